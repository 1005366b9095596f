//! Reliability under real programs (C and C++ under `LD_PRELOAD=libhakmem.so`): what a
//! process may do that no allocator call expects — end with `_exit` inside a signal
//! handler, `vfork` and fail to `exec`, run out of address space under a new-handler,
//! ask for many small aligned blocks — must neither hang, lose a report, nor leak.

mod common;
use common::preload::*;
use std::process::Command;

/// `_exit(3)` from a SIGALRM handler at a random moment of an allocation loop (1–4 MiB
/// blocks every other call, so the learner's locks are often held), in the modes that
/// take the most learner locks, with the sites mode's exit report on: every child exits
/// with 3 within 3 s. Before, the report waited for a lock the interrupted thread held
/// (5 of 600 children hung in research mode).
#[test]
fn exit_from_a_signal_handler_never_hangs_in_the_sites_mode() {
    let dir = tmpdir("exit-in-handler");
    let exe = build_c("exit_in_handler", &dir);
    for mode in ["research", "learning"] {
        let out = Command::new(&exe)
            .arg("200")
            .env("LD_PRELOAD", preload_lib())
            .env("HAKMEM_MODE", mode)
            .env("HAKMEM_SITES", "1")
            .env("HAKMEM_STATS", "1")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok 200\n",
            "HAKMEM_MODE={mode}"
        );
        // Each child wrote its report from `_exit`.
        let reports = String::from_utf8_lossy(&out.stderr)
            .matches("hakmem 0.1.0 stats for exit_in_handler")
            .count();
        assert!(reports >= 200, "{mode}: {reports} reports for 200 children");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `vfork` child whose `exec` fails and that calls `_exit(127)` shares its parent's
/// memory: it writes no report (it would be the parent's counters under its own pid), and
/// the parent still writes its own. Before, the child's report took the once-only flag and
/// the parent wrote none.
#[test]
fn a_vfork_child_leaves_the_report_to_its_parent() {
    let dir = tmpdir("vfork");
    let exe = build_c("vfork_exit", &dir);
    let out = Command::new(&exe)
        .env("LD_PRELOAD", preload_lib())
        .env("HAKMEM_SITES", "1")
        .env("HAKMEM_STATS_JSON", dir.join("stats-%p.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let pids: Vec<&str> = text.split_whitespace().collect();
    let (parent, child) = (pids[1], pids[3]);
    assert!(
        !dir.join(format!("stats-{child}.json")).exists(),
        "the vfork child wrote a report"
    );
    let json = std::fs::read_to_string(dir.join(format!("stats-{parent}.json")))
        .expect("the parent's report");
    let v = parse(&json);
    assert_eq!(v["process"]["pid"].as_u64(), Some(parent.parse().unwrap()));
    assert!(v["pool"]["allocs"].as_u64().unwrap() >= 100, "{json}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `new (std::nothrow)` calls the new-handler as the standard says: under an address-space
/// limit, a handler that frees a reserve is called once and the request served; one that
/// throws `bad_alloc` gives null; no handler gives null. The program checks each case
/// (and the throwing `new` too); it prints "ok" as it does under glibc. Before, nothrow
/// `new` returned null with no handler call.
#[test]
fn nothrow_new_calls_the_new_handler() {
    let dir = tmpdir("nothrow");
    let exe = build_cxx("nothrow_handler", &dir);
    let plain = run_plain(Command::new(&exe));
    assert!(plain.status.success(), "{plain:?}");
    // With and without the learner, so the reserve is released or kept by the BigCache.
    for env in [("HAKMEM_MODE", "balanced"), ("HAKMEM_THRESHOLD_KB", "1024")] {
        let mut c = Command::new(&exe);
        c.env(env.0, env.1);
        let (out, json) = run_preloaded(c, &dir);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&plain.stdout),
            "{env:?}"
        );
        assert!(out.status.success(), "{env:?}: {out:?}");
        assert!(stat(&json, "big", "allocs") >= 5, "{json}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// 150 000 `posix_memalign(64, 48)` (and other alignments up to a page), half freed, then
/// all: in every front and in the sites mode, blocks come from the pool's size classes, so
/// the process keeps a few dozen mappings, and no `munmap` is refused. Before, the reuse
/// front (every `hakprof sites` run) mapped a page per block: 65 532 mappings, 9 546 left
/// after the last free, 9 502 refused unmaps.
#[test]
fn small_aligned_blocks_come_from_the_pool_in_every_front() {
    let dir = tmpdir("aligned-small");
    let exe = build_c("aligned_small", &dir);
    for env in [
        ("HAKMEM_FRONT", "auto"),
        ("HAKMEM_FRONT", "pool"),
        ("HAKMEM_FRONT", "reuse"),
        ("HAKMEM_SITES", "1"),
    ] {
        let mut c = Command::new(&exe);
        c.env(env.0, env.1);
        let (out, json) = run_preloaded(c, &dir);
        let text = String::from_utf8_lossy(&out.stdout);
        let counts: Vec<usize> = text
            .trim()
            .rsplit(' ')
            .take(2)
            .map(|n| n.parse().unwrap_or(usize::MAX))
            .collect();
        assert!(text.starts_with("aligned ok"), "{env:?}: {text}");
        assert!(
            counts.iter().all(|&n| n < 200),
            "{env:?}: mappings at the peak and after: {text}"
        );
        assert_eq!(stat(&json, "syscalls", "munmap_failed"), 0, "{json}");
        assert_eq!(stat(&json, "syscalls", "unmap_pending"), 0, "{json}");
        assert!(stat(&json, "syscalls", "mmap") < 100, "{env:?}: {json}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A child forked while another thread of the parent holds blocks frees them all (into a
/// heap whose thread the child does not have), allocates on its own and exits through
/// `exit`: in the default, research and sites modes, no child crashes or hangs.
#[test]
fn a_fork_child_frees_the_blocks_of_a_thread_it_does_not_have() {
    let dir = tmpdir("fork-free");
    let exe = build_c("fork_free", &dir);
    for env in [
        ("HAKMEM_MODE", "balanced"),
        ("HAKMEM_MODE", "research"),
        ("HAKMEM_SITES", "1"),
    ] {
        let mut c = Command::new(&exe);
        c.arg("20").env(env.0, env.1);
        let (out, json) = run_preloaded(c, &dir);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok 20\n", "{env:?}");
        assert!(
            stat(&json, "pool", "allocs") + stat(&json, "big", "allocs") >= 4000,
            "{json}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
