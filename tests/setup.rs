//! `scripts/setup`'s detection of libclang, the library bindgen loads to build the
//! FoundationDB bindings: only files named as clang-sys looks for them count, so a machine
//! with only the C++ library (`libclang-cpp.so.N`, which Debian installs with other LLVM
//! packages) is reported missing and setup installs libclang-dev.

use std::path::Path;
use std::process::{Command, Output};

fn find_libclang(dir: &Path) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup");
    Command::new("bash")
        .arg(script)
        .arg("--find-libclang")
        .arg(dir)
        .output()
        .expect("bash runs scripts/setup")
}

fn folder_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in files {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    dir
}

#[test]
fn only_the_cpp_library_is_reported_missing() {
    let dir = folder_with(&["libclang-cpp.so.14", "libclang-cpp.so"]);
    let out = find_libclang(dir.path());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("libclang missing"), "{said}");
}

#[test]
fn every_name_clang_sys_loads_is_found() {
    for name in [
        "libclang.so",
        "libclang.so.1",
        "libclang-14.so",
        "libclang-14.so.1",
        "libclang-14.0.6.so",
    ] {
        let dir = folder_with(&["libclang-cpp.so.14", name]);
        let out = find_libclang(dir.path());
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {said}");
        assert_eq!(
            said.trim(),
            dir.path().join(name).display().to_string(),
            "{name}"
        );
    }
}
