//! Running the built binary from the tests.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs `citychain` with `args` and waits for it.
pub fn citychain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citychain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
