//! A use-after-free write must not turn `malloc` into an arbitrary-address allocator, and
//! the other heap bugs a hardened allocator catches are caught as the README's table says:
//! `microbench/c/hardening.c` under `libhakmem.so`, each case in its own process
//! (`microbench::hardening`), in every front and mode.

use microbench::hardening::{self, Outcome};
use microbench::native;

/// The program, built once for every test of this file (they run in parallel).
fn program() -> &'static std::path::Path {
    static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let _ = common::preload::preload_lib(); // builds libhakmem.so if needed
        hardening::build().unwrap()
    })
}

fn outcome(case: &str, env: &[(&str, &str)]) -> Outcome {
    let hakmem = native::hakmem().unwrap();
    hardening::run_case(program(), &hakmem, case, env).unwrap()
}

mod common;

const FRONTS: [&[(&str, &str)]; 5] = [
    &[("HAKMEM_FRONT", "auto")],
    &[("HAKMEM_FRONT", "pool")],
    &[("HAKMEM_FRONT", "reuse")],
    &[("HAKMEM_SITES", "1")],
    &[("HAKMEM_CHECK", "1")],
];

fn assert_refused_or_harmless(case: &str, env: &[(&str, &str)]) {
    match outcome(case, env) {
        Outcome::Aborted(line) => assert!(
            line.starts_with("hakmem: malloc(): corrupted free list in page 0x"),
            "{case} {env:?}: {line}"
        ),
        Outcome::Returned { bad: false, .. } => {} // the link was never followed
        other => panic!("{case} {env:?}: {other:?}"),
    }
}

/// Two 64 B blocks freed, a static buffer's address written into the first word of the
/// second (a use-after-free), two mallocs: no front hands out the forged address. Where the
/// block's first word is its free-list link (the pool's fronts), the process aborts with
/// the line naming the page and the block; the reuse front keeps the link in the header
/// before the block, out of reach. Before, the second malloc returned the address.
#[test]
fn a_forged_free_list_link_is_refused_in_every_front() {
    for env in FRONTS {
        assert_refused_or_harmless("forge", env);
    }
    assert!(matches!(outcome("forge", FRONTS[0]), Outcome::Aborted(_)));
}

/// 32 bytes of 'A' written past a 64 B block over the free block after it: the next
/// mallocs refuse the overwritten link.
#[test]
fn an_overflow_over_a_free_block_is_refused_in_every_front() {
    for env in FRONTS {
        assert!(
            matches!(outcome("overflow", env), Outcome::Aborted(_)),
            "{env:?}"
        );
    }
}

/// The checked mode's exact checks: a forged link inside the page, a double free with other
/// frees in between, an interior pointer, a pointer never handed out; and the default's:
/// a double free of the block just freed.
#[test]
fn the_checked_mode_catches_what_the_default_leaves() {
    let checked = [("HAKMEM_CHECK", "1")];
    for case in [
        "forge_in_page",
        "double_deep",
        "interior",
        "never_allocated",
        "double_top",
    ] {
        assert!(
            matches!(outcome(case, &checked), Outcome::Aborted(ref l) if l.starts_with("hakmem: ")),
            "{case}"
        );
    }
    assert!(matches!(
        outcome("double_top", &[]),
        Outcome::Aborted(ref l) if l.contains("double free")
    ));
    // What the default mode leaves, as the README says.
    assert!(matches!(
        outcome("forge_in_page", &[]),
        Outcome::Returned { bad: true, .. }
    ));
}
