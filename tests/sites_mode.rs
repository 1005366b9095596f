//! The sites mode (`HAKMEM_SITES=1`) under Rust: `alloc_at` names each site by the source
//! location that called it, and the census counts its blocks like the C ABI's.

mod common;

use hakmem::{alloc_at, free_at, Site};
use std::alloc::Layout;

const CHILD: &str = "HAKMEM_SITES_CHILD";

#[test]
fn rust_sites_are_named_by_their_source_location() {
    if std::env::var(CHILD).is_ok() {
        let small = Layout::from_size_align(100, 16).unwrap();
        let big = Layout::from_size_align(1 << 20, 16).unwrap();
        let nodes: Vec<*mut u8> = (0..10).map(|_| alloc_at(small, Site::here())).collect();
        let buffer = alloc_at(big, Site::here()); // left live
        assert!(!buffer.is_null());
        for p in nodes {
            // SAFETY: allocated above with `small`, freed once.
            unsafe { free_at(p, small) };
        }
        let mut json = String::new();
        hakmem::stats::snapshot().write_json(&mut json).unwrap();
        println!("\nSTATS {json}");
        return;
    }
    let out = common::run_test_in_child(
        "rust_sites_are_named_by_their_source_location",
        CHILD,
        "1",
        &[("HAKMEM_SITES", "1")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness may print "test … ... " on the same line first.
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("STATS ").map(|(_, json)| json))
        .expect("stats");
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(json["sites_mode"], true);
    let at = |line: u64| {
        json["sites"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["location"]["line"] == line)
            .unwrap_or_else(|| panic!("no site at line {line}: {json}"))
    };
    let nodes = at(16);
    assert!(nodes["location"]["file"]
        .as_str()
        .unwrap()
        .ends_with("sites_mode.rs"));
    assert_eq!(
        (&nodes["count"], &nodes["bytes"]),
        (&10.into(), &1000.into())
    );
    assert_eq!(nodes["live_bytes"], 0, "every node freed");
    let buffer = at(17);
    assert_eq!(
        (&buffer["count"], &buffer["live_bytes"]),
        (&1.into(), &(1 << 20).into())
    );
}
