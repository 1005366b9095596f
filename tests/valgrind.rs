//! valgrind's memcheck sees hakmem's blocks when the `valgrind` feature is on: a Rust
//! program with `Hakmem` as its global allocator (`examples/valgrind_probe.rs`) gets the
//! reports it would get with glibc's malloc, and ordinary work is reported clean.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the probe with the feature, in a target folder of its own (the test's own cargo
/// build may still hold the default one).
fn probe() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/valgrind");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--example",
            "valgrind_probe",
            "--features",
            "valgrind",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .status()
        .expect("run cargo");
    assert!(st.success(), "building the valgrind probe failed");
    target.join("debug/examples/valgrind_probe")
}

/// Runs the probe under memcheck; returns (exit code, valgrind's report).
fn memcheck(exe: &Path, mode: &str) -> (Option<i32>, String) {
    let out = Command::new("valgrind")
        .args(["--tool=memcheck", "--error-exitcode=99"])
        .arg(exe)
        .arg(mode)
        .output()
        .expect("valgrind is installed by `make test-tools`");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn memcheck_reports_overruns_and_uses_after_free_of_hakmem_blocks() {
    let exe = probe();

    let (code, report) = memcheck(&exe, "overrun");
    assert_eq!(code, Some(99), "{report}");
    // memcheck says "a recently re-allocated block" when the address was freed before.
    assert!(
        report.contains("Invalid read of size 1")
            && (report.contains("0 bytes after a block of size 64 alloc'd")
                || report
                    .contains("0 bytes after a recently re-allocated block of size 64 alloc'd")),
        "{report}"
    );

    let (code, report) = memcheck(&exe, "use-after-free");
    assert_eq!(code, Some(99), "{report}");
    assert!(
        report.contains("Invalid read of size 1")
            && report.contains("8 bytes inside a block of size 200 free'd"),
        "{report}"
    );

    // Ordinary work: no false report, and memcheck counted hakmem's blocks.
    let (code, report) = memcheck(&exe, "clean");
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("ERROR SUMMARY: 0 errors"), "{report}");
    let allocs: u64 = report
        .split("total heap usage: ")
        .nth(1)
        .and_then(|s| s.split(" allocs").next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or(0);
    assert!(allocs > 10_000, "memcheck saw {allocs} blocks: {report}");
}
