//! Running programs under `LD_PRELOAD=libhakmem.so`: the library, scratch folders, the
//! test programs of `tests/data/` built with the system's compilers, and the stats JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Builds (if needed) and returns the preload library.
pub fn preload_lib() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args([
            "build",
            "--profile",
            "preload",
            "-q",
            "-p",
            "hakmem-preload",
        ])
        .current_dir(root)
        .status()
        .expect("run cargo to build libhakmem.so");
    assert!(st.success(), "building libhakmem.so failed");
    let lib = root.join("target/preload/libhakmem.so");
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hakmem-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `cmd` with the preload and a stats file; returns its output and the stats JSON.
pub fn run_preloaded(mut cmd: Command, dir: &Path) -> (Output, String) {
    let stats = dir.join("stats-%p.json");
    let child = cmd
        .env("LD_PRELOAD", preload_lib())
        .env("HAKMEM_STATS_JSON", &stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn preloaded program");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let path = dir.join(format!("stats-{pid}.json"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no stats at {} ({e}); stderr: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

pub fn run_plain(mut cmd: Command) -> Output {
    cmd.output().expect("spawn program")
}

pub fn parse(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("stats JSON: {e}: {json}"))
}

/// `section.key` of a stats JSON, a count.
pub fn stat(json: &str, section: &str, key: &str) -> u64 {
    parse(json)[section][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {section}.{key} in {json}"))
}

pub fn assert_same_and_served(
    name: &str,
    plain: &Output,
    pre: &Output,
    json: &str,
    min_allocs: u64,
) {
    assert!(
        plain.status.success(),
        "{name} failed without preload: {}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert!(
        pre.status.success(),
        "{name} failed under hakmem: {}",
        String::from_utf8_lossy(&pre.stderr)
    );
    assert!(!plain.stdout.is_empty(), "{name} printed nothing");
    assert!(
        plain.stdout == pre.stdout,
        "{name}: output differs under hakmem"
    );
    assert_eq!(parse(json)["allocator"], "hakmem", "{json}");
    let allocs = stat(json, "pool", "allocs") + stat(json, "big", "allocs");
    assert!(
        allocs >= min_allocs,
        "{name}: hakmem served only {allocs} allocations: {json}"
    );
}

pub fn build_c(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.c"));
    let exe = dir.join(name);
    let st = Command::new("cc")
        .arg("-O0")
        .arg("-fno-builtin")
        .arg("-pthread")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "compiling {name}.c failed");
    exe
}

/// Builds `tests/data/<name>.cpp` with the system's C++ compiler into `dir`.
pub fn build_cxx(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/{name}.cpp"));
    let exe = dir.join(name);
    let st = Command::new("c++")
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("c++");
    assert!(st.success(), "compiling {name}.cpp failed");
    exe
}
