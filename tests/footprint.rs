//! The footprint (`hakmem::footprint`): each of hakmem's regions measured with `mincore`,
//! in a child process so that the blocks measured are this test's alone.

mod common;

use hakmem::footprint;
use hakmem::{alloc_at, free_at, Site};
use std::alloc::Layout;

#[test]
fn child_entry() {
    if std::env::var("HAKMEM_TEST_CHILD").as_deref() != Ok("footprint") {
        return;
    }
    let before = footprint::measure();
    // A pool block and a 4 MiB big block, written, so both are resident.
    let (small_l, big_l) = (
        Layout::from_size_align(100, 16).unwrap(),
        Layout::from_size_align(4 << 20, 16).unwrap(),
    );
    let small = alloc_at(small_l, Site(0xF007_0001));
    let big = alloc_at(big_l, Site(0xF007_0002));
    assert!(!small.is_null() && !big.is_null());
    // SAFETY: both blocks are ours and at least that large.
    unsafe {
        small.write_bytes(1, 100);
        big.write_bytes(1, 4 << 20);
    }
    let f = footprint::measure();
    println!(
        "\nfootprint {} {} {} {} {} {} {} {} {} {}",
        f.process_rss,
        f.statics,
        f.site_table + f.segment_map + f.stack_table,
        f.segments,
        f.segment_headers,
        f.segment_pages,
        f.heap_bytes,
        f.big_live,
        f.registry,
        f.big_live - before.big_live
    );
    // SAFETY: allocated above with these layouts, freed once.
    unsafe {
        free_at(small, small_l);
        free_at(big, big_l);
    }
}

#[test]
fn every_region_is_measured_and_its_parts_fit_in_the_whole() {
    let out = common::run_test_in_child("child_entry", "HAKMEM_TEST_CHILD", "footprint", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("footprint "))
        .unwrap_or_else(|| panic!("{text}"));
    let v: Vec<usize> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let [rss, statics, named, segments, headers, pages, heaps, big_live, registry, big_new] = v[..]
    else {
        panic!("{line}")
    };
    let page = 4096;
    assert!(statics > 0 && named <= statics, "{line}");
    assert!(segments >= 1 && headers >= page && pages >= page, "{line}");
    assert!(heaps > 0, "a heap is resident: {line}");
    assert!(
        big_new >= 4 << 20,
        "the written 4 MiB block is resident: {line}"
    );
    assert!(registry > 0, "{line}");
    let hakmem = statics + headers + pages + heaps + big_live + registry;
    assert!(
        hakmem <= rss,
        "hakmem's parts ({hakmem}) within the process's RSS ({rss}): {line}"
    );
}
