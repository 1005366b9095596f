//! Memory is given back: resident set size measured from /proc/self/status in child
//! processes (each measurement needs a fresh process).

use std::alloc::{GlobalAlloc, Layout};
mod common;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

const CHILD_ENV: &str = "HAKMEM_RSS_CHILD";

fn rss_kib() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn touch(p: *mut u8, n: usize) {
    let mut i = 0;
    while i < n {
        unsafe { p.add(i).write_volatile(1) };
        i += 4096;
    }
}

fn alloc(size: usize) -> (*mut u8, Layout) {
    let l = Layout::from_size_align(size, 16).unwrap();
    let p = unsafe { GLOBAL.alloc(l) };
    assert!(!p.is_null());
    touch(p, size);
    (p, l)
}

fn free((p, l): (*mut u8, Layout)) {
    unsafe { GLOBAL.dealloc(p, l) };
}

/// A bit of ordinary activity: small, medium and big allocations, every 50 ms.
fn keep_busy(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        for size in [100, 20 << 10, 100 << 10, 2 << 20] {
            free(alloc(size));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn working_set_freed() {
    let rss0 = rss_kib();
    let mut blocks: Vec<_> = (0..2000).map(|_| alloc(64 << 10)).collect();
    blocks.extend((0..32).map(|_| alloc(2 << 20)));
    let rss1 = rss_kib();
    for b in blocks.drain(..) {
        free(b);
    }
    keep_busy(Duration::from_millis(2500)); // one lifecycle window (2 s) and a bit
    let rss2 = rss_kib();
    println!("\nrss {rss0} {rss1} {rss2}");
}

/// 512 MiB of 8 MiB blocks written and freed (the BigCache keeps them), then 3 s of small
/// allocations only: the pool's refills run the thermal policy, so the cached blocks leave
/// without another big-block call.
fn big_set_then_small_only() {
    let rss0 = rss_kib();
    let blocks: Vec<_> = (0..64).map(|_| alloc(8 << 20)).collect();
    for &(p, l) in &blocks {
        touch(p, l.size());
    }
    let rss1 = rss_kib();
    blocks.into_iter().for_each(free);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let small: Vec<_> = (0..1000).map(|i| alloc(64 + (i % 32) * 128)).collect();
        small.into_iter().for_each(free);
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss2 = rss_kib();
    println!("\nrss {rss0} {rss1} {rss2}");
}

fn minor_faults() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_minflt
}

/// One block grown 1 MiB → 64 MiB by doubling (new pages written, old contents checked),
/// freed, twice; prints the second growth's page faults and `mremap` calls, and the peak
/// RSS after the first and the second.
fn regrow() {
    let grow = || {
        let (mut p, mut l) = alloc(1 << 20);
        while l.size() < 64 << 20 {
            let new = l.size() * 2;
            p = unsafe { GLOBAL.realloc(p, l, new) };
            assert!(!p.is_null());
            assert_eq!(unsafe { p.add(l.size() - 4096).read() }, 1, "lost contents");
            touch(unsafe { p.add(l.size()) }, new - l.size());
            l = Layout::from_size_align(new, 16).unwrap();
        }
        free((p, l));
    };
    grow();
    let peak1 = peak_rss_kib();
    let (f0, m0) = (minor_faults(), hakmem::stats::snapshot().syscalls.mremap);
    grow();
    let (f1, m1) = (minor_faults(), hakmem::stats::snapshot().syscalls.mremap);
    println!("\nrss {} {} {} {}", f1 - f0, m1 - m0, peak1, peak_rss_kib());
}

/// A 24 MiB block written and freed, then a 4 MiB request (which splits the cached block:
/// its 20 MiB tail stays cached) and a 16 MiB one (served by the tail); prints the splits,
/// mappings and page faults of the two requests.
fn split() {
    free(alloc(24 << 20));
    let s0 = hakmem::stats::snapshot();
    let f0 = minor_faults();
    let small = alloc(4 << 20);
    let large = alloc(16 << 20);
    let (f1, s1) = (minor_faults(), hakmem::stats::snapshot());
    free(small);
    free(large);
    println!(
        "\nrss {} {} {}",
        s1.big.splits - s0.big.splits,
        s1.syscalls.mmap - s0.syscalls.mmap,
        f1 - f0
    );
}

/// `HAKMEM_THP=site`: six 4 MiB blocks of a site that writes them whole, then six of a
/// site that writes 256 KiB of each. Prints the blocks mapped for huge pages and the
/// 2 MiB-aligned blocks of each site.
fn huge_pages_per_site() {
    use hakmem::front::api::{alloc_at, free_at};
    use hakmem::site::Site;
    let l = Layout::from_size_align(4 << 20, 16).unwrap();
    let aligned = |p: *mut u8| (p as usize - 32).is_multiple_of(2 << 20);
    // Both sites' blocks stay live to the end: a freed block would serve the other
    // site's next request from the BigCache, and no fresh block would be mapped.
    let mut live = Vec::new();
    let mut run = |site: Site, written: usize| {
        let before = hakmem::stats::snapshot().big.huge_maps;
        let blocks: Vec<*mut u8> = (0..6)
            .map(|_| {
                let p = alloc_at(l, site);
                assert!(!p.is_null());
                touch(p, written);
                p
            })
            .collect();
        let huge = hakmem::stats::snapshot().big.huge_maps - before;
        let on_boundary = blocks.iter().filter(|&&p| aligned(p)).count();
        live.extend(blocks);
        (huge, on_boundary)
    };
    let dense = run(Site(0x7E57_0001), 4 << 20);
    let sparse = run(Site(0x7E57_0002), 256 << 10);
    // SAFETY: each block came from `alloc_at` with `l`.
    live.into_iter().for_each(|p| unsafe { free_at(p, l) });
    println!("\nrss {} {} {} {}", dense.0, dense.1, sparse.0, sparse.1);
}

fn peak_rss_kib() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn thread_churn() {
    let run = |n: usize| {
        for _ in 0..n {
            std::thread::spawn(|| {
                let v: Vec<_> = (0..200).map(|i| alloc(64 + i * 16)).collect();
                v.into_iter().for_each(free);
            })
            .join()
            .unwrap();
        }
    };
    run(100);
    let a = rss_kib();
    run(900);
    let b = rss_kib();
    println!("\nrss {a} {b}");
}

fn alternating() {
    let mut marks = Vec::new();
    for phase in 0..20 {
        let blocks: Vec<_> = if phase % 2 == 0 {
            (0..20_000).map(|i| alloc(16 + (i % 64) * 16)).collect()
        } else {
            (0..24).map(|i| alloc((1 << 20) + i * 100_000)).collect()
        };
        blocks.into_iter().for_each(free);
        marks.push(rss_kib());
    }
    println!("\nrss {} {}", marks[9], marks[19]);
}

/// Pool pages emptied in a segment still in use: those given back to the segment leave
/// after the purge delay (10 ms) at the next refill; the size class's spare (one empty page
/// kept beside its current one) goes back after 100 ms empty, its memory with it.
fn emptied_pages() {
    let keep = alloc(20 << 10); // keeps the medium pages' segment in use
    let blocks: Vec<_> = (0..80).map(|_| alloc(48 << 10)).collect(); // 8 pages of 480 KiB
    let r0 = rss_kib();
    blocks.into_iter().for_each(free);
    std::thread::sleep(Duration::from_millis(30));
    free(alloc(3000)); // a size class not used yet: a refill, where the purges run
    let r1 = rss_kib();
    std::thread::sleep(Duration::from_millis(150));
    free(alloc(5000)); // another refill
    let r2 = rss_kib();
    free(keep);
    println!("\nrss {r0} {r1} {r2}");
}

#[test]
fn child_entry() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("working_set") => working_set_freed(),
        Ok("churn") => thread_churn(),
        Ok("big_then_small") => big_set_then_small_only(),
        Ok("alternating") => alternating(),
        Ok("regrow") => regrow(),
        Ok("split") => split(),
        Ok("huge") => huge_pages_per_site(),
        Ok("emptied") => emptied_pages(),
        _ => {}
    }
}

fn run(case: &str) -> Vec<i64> {
    run_with(case, &[])
}

fn run_with(case: &str, env: &[(&str, &str)]) -> Vec<i64> {
    let out = common::run_test_in_child("child_entry", CHILD_ENV, case, env);
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rss "))
        .unwrap_or_else(|| panic!("{text}"));
    line.split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn huge_pages_go_to_the_site_that_writes_its_blocks_whole() {
    let r = run_with("huge", &[("HAKMEM_THP", "site")]);
    // Dense: every block on a 2 MiB boundary and advised (the first a probe, its first
    // chunk on small pages, the rest advised all the same).
    assert_eq!((r[0], r[1]), (6, 6), "dense site: {r:?}");
    // Sparse: the probe only; once measured (at the next block) the site maps plain
    // blocks, which the kernel places anywhere.
    assert_eq!(r[2], 1, "sparse site: {r:?}");
    assert!(r[3] <= 2, "sparse site's blocks on a 2 MiB boundary: {r:?}");
    // Off by default: nothing advised.
    let r = run_with("huge", &[]);
    assert_eq!((r[0], r[2]), (0, 0), "default: {r:?}");
}

#[test]
fn emptied_pool_pages_give_their_memory_back_while_their_segment_lives() {
    let r = run("emptied");
    // 80 blocks of 48 KiB written whole (3.75 MiB on 8 pages), freed: the class keeps its
    // current page and a spare; the other 6 leave after the purge delay.
    assert!(
        r[0] - r[1] > 2000,
        "emptied pages stayed resident after the purge delay: {r:?}"
    );
    // The spare (480 KiB written) leaves once empty for 100 ms: by then all but the
    // current page are gone. (Compared with the start, not with the middle measure: a
    // thread that wakes late from its first sleep releases the spare there already.)
    assert!(
        r[0] - r[2] > 2300,
        "the spare page stayed resident after 100 ms empty: {r:?}"
    );
}

#[test]
fn rss_falls_back_after_a_large_working_set_is_freed() {
    let r = run("working_set");
    let (base, peak, after) = (r[0], r[1], r[2]);
    assert!(peak - base > 150_000, "the working set was resident: {r:?}");
    // Back within a fifth of the working set above where it started.
    assert!(
        after - base < (peak - base) / 5,
        "RSS did not fall back: base {base} peak {peak} after {after} KiB"
    );
    eprintln!("working set: base {base} KiB, peak {peak} KiB, after {after} KiB");
}

#[test]
fn cached_big_blocks_leave_within_3_s_with_only_small_allocations_after() {
    let r = run("big_then_small");
    let (base, peak, after) = (r[0], r[1], r[2]);
    assert!(peak - base > 400_000, "the big blocks were resident: {r:?}");
    // Issue 13's target: back within 5 MiB + 10 % of where it started.
    assert!(
        after <= base + base / 10 + 5 * 1024,
        "RSS did not come back: base {base} peak {peak} after {after} KiB"
    );
    eprintln!("big set: base {base} KiB, peak {peak} KiB, after {after} KiB");
}

#[test]
fn thread_churn_keeps_rss_flat() {
    let r = run("churn");
    assert!(
        r[1] - r[0] < 16 * 1024,
        "RSS grew from {} to {} KiB over 900 more threads",
        r[0],
        r[1]
    );
}

#[test]
fn alternating_phases_do_not_grow_without_bound() {
    let r = run("alternating");
    assert!(
        r[1] - r[0] < 16 * 1024,
        "RSS grew from {} (phase 10) to {} KiB (phase 20)",
        r[0],
        r[1]
    );
}

/// A site whose blocks grew gets its grown block back whole on the next round: the growth
/// then needs no `mremap` and faults no page in (the first round faulted 16 384), and the
/// peak stays that of one 64 MiB block.
#[test]
fn a_block_that_grew_is_reused_whole_by_the_next_growth() {
    let r = run("regrow");
    let (faults, mremaps, peak1, peak2) = (r[0], r[1], r[2], r[3]);
    assert_eq!(
        mremaps, 0,
        "the second growth used mremap ({faults} faults)"
    );
    assert!(faults < 1000, "the second growth faulted {faults} pages in");
    assert!(
        peak2 <= peak1 + 1024,
        "peak RSS grew from {peak1} to {peak2} KiB"
    );
}

/// A cached block much larger than the request is split, not shrunk: the tail stays cached
/// with its pages, and the next request it fits needs no mapping and no page fault.
#[test]
fn a_split_cached_block_serves_the_next_request_from_its_tail() {
    let r = run("split");
    let (splits, mmaps, faults) = (r[0], r[1], r[2]);
    assert_eq!(splits, 1, "the 24 MiB block was not split");
    assert_eq!(mmaps, 0, "a request mapped fresh memory");
    assert!(
        faults < 100,
        "{faults} pages faulted in (a fresh 20 MiB is 5120)"
    );
}
