//! SIGTERM fires the shutdown handle instead of killing the process. Alone in its own test
//! binary because it signals the whole process.

#![cfg(unix)]

use std::time::Duration;

use citychain_runtime::shutdown::Shutdown;

#[tokio::test]
async fn sigterm_triggers_shutdown() {
    let shutdown = Shutdown::on_signals().expect("signal handlers register");
    assert!(!shutdown.is_triggered());

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
        .await
        .expect("SIGTERM fired the handle");
}
