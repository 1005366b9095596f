//! The measured paths, each a named probe: `make()` sets it up (outside any measurement)
//! and returns a closure that performs `ops` operations of the path. Criterion times the
//! closure, gungraun counts its instructions, `hakprof` wraps it in perf counters and
//! samples its stacks: all three describe the same code.

use crate::peers;
use crate::workloads;
use hakmem::big::cache;
use hakmem::header::{AllocHeader, Method};
use hakmem::learn::{elo::Elo, rng::Rng, sites, ucb1::Ucb1};
use hakmem::pool::page::{Block, Page};
use hakmem::Site;
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

/// Operations per run of a probe (the closure); per-op figures divide by it.
pub const OPS: u64 = 1000;

pub type Run = Box<dyn FnMut()>;

pub struct Probe {
    pub name: &'static str,
    /// What one operation is.
    pub what: &'static str,
    pub make: fn() -> Run,
}

/// The step probes of the two models, then the whole paths.
pub const STEPS: [Probe; 12] = [
    Probe {
        name: "site_hash",
        what: "return address → site id → site table entry",
        make: site_hash,
    },
    Probe {
        name: "learner_decide",
        what: "the learner's decision as the reuse path takes it (per-thread cached choice)",
        make: learner_decide,
    },
    Probe {
        name: "bigcache_lookup_hit",
        what: "BigCache take (hit) + put back",
        make: bigcache_hit,
    },
    Probe {
        name: "bigcache_lookup_miss",
        what: "BigCache take on an empty (site, class)",
        make: bigcache_miss,
    },
    Probe {
        name: "elo_select",
        what: "ELO epsilon-greedy selection",
        make: elo_select,
    },
    Probe {
        name: "ucb1_select",
        what: "UCB1 arm selection (6 arms)",
        make: ucb1_select,
    },
    Probe {
        name: "header_write",
        what: "32-byte AllocHeader write",
        make: header_write,
    },
    Probe {
        name: "header_verify",
        what: "AllocHeader magic + state check",
        make: header_verify,
    },
    Probe {
        name: "freelist_pop",
        what: "pool page free-list pop",
        make: freelist_pop,
    },
    Probe {
        name: "freelist_push",
        what: "pool page free-list push",
        make: freelist_push,
    },
    Probe {
        name: "reuse_path",
        what: "64 B malloc+free, hakmem model (site, learner, BigCache check, header)",
        make: reuse_path,
    },
    Probe {
        name: "pool_path",
        what: "64 B malloc+free, pool model",
        make: pool_path,
    },
];

/// Every probe: the steps, then a 64 B pair and a 64 B batch through each allocator.
pub fn all() -> Vec<Probe> {
    let mut v: Vec<Probe> = STEPS.into_iter().collect();
    macro_rules! peer_probes {
        ($($peer:literal => $alloc:path),*) => {$(
            v.push(Probe { name: concat!("pair64/", $peer), what: concat!("64 B malloc+free through ", $peer), make: || pair_probe($peer) });
            v.push(Probe { name: concat!("batch64/", $peer), what: concat!("64 B malloc (and free), batch of 1000, through ", $peer), make: || batch_probe($peer) });
        )*};
    }
    crate::for_each_peer!(peer_probes);
    v.push(Probe {
        name: "pair64/hakmem-checked",
        what: "64 B malloc, one word written, free, with HAKMEM_CHECK=1's validation",
        make: pair_checked,
    });
    v
}

pub fn by_name(name: &str) -> Option<Probe> {
    all().into_iter().find(|p| p.name == name)
}

/// A site slot no real allocation in the bench processes uses.
fn probe_slot() -> usize {
    (sites::slot(Site::UNKNOWN) + 128) % sites::SITES
}

fn site_hash() -> Run {
    Box::new(|| {
        for i in 0..OPS as usize {
            black_box(sites::slot(Site::from_return_address(black_box(
                0x40_1000 + (i & 7) * 16,
            ))));
        }
    })
}

fn learner_decide() -> Run {
    let slot = probe_slot();
    // The per-thread copy lives in this thread's heap: make sure the thread has one.
    let l = Layout::from_size_align(64, 8).unwrap();
    // SAFETY: allocated and freed with the same layout.
    unsafe { peers::HAKMEM.dealloc(peers::HAKMEM.alloc(l), l) };
    Box::new(move || {
        for _ in 0..OPS {
            black_box(hakmem::front::reuse::decide_small(black_box(slot), 64));
        }
    })
}

const FAKE_SPAN: usize = 2 << 20;
/// "Put" timestamps in the far future: the thermal policy never ages the probe's block out.
const NEVER_IDLE: u64 = u64::MAX;
/// No cap: the probe's block is always taken back.
const NO_CAP: usize = usize::MAX / 4;

fn bigcache_hit() -> Run {
    let slot = probe_slot();
    // A real 2 MiB block of hakmem's (never freed), cached in the probe's own slot.
    let block = hakmem::big::alloc(FAKE_SPAN, 16, 0) as usize;
    let _ = cache::put(slot, 2, block, FAKE_SPAN, NEVER_IDLE, NO_CAP, NO_CAP);
    Box::new(move || {
        for _ in 0..OPS {
            let v = cache::take(slot, 2);
            let (v, _) = black_box(v.expect("the probe's block is cached"));
            let _ = cache::put(slot, 2, v, FAKE_SPAN, NEVER_IDLE, NO_CAP, NO_CAP);
        }
    })
}

fn bigcache_miss() -> Run {
    let slot = probe_slot();
    Box::new(move || {
        for _ in 0..OPS {
            black_box(cache::take(slot, 7));
        }
    })
}

fn elo_select() -> Run {
    let elo = Elo::default();
    let mut rng = Rng::new(1);
    Box::new(move || {
        for _ in 0..OPS {
            black_box(elo.select(&mut rng));
        }
    })
}

fn ucb1_select() -> Run {
    let mut u = Ucb1::default();
    for arm in 0..6 {
        u.record(arm, 0.1 * arm as f64);
    }
    Box::new(move || {
        for _ in 0..OPS {
            black_box(black_box(&u).select());
        }
    })
}

/// A 64-byte, 16-aligned scratch block for the header probes.
#[repr(C, align(64))]
struct Scratch([u8; 64]);

fn header_write() -> Run {
    let mut s = Box::new(Scratch([0; 64]));
    Box::new(move || {
        let user = black_box(s.0.as_mut_ptr().wrapping_add(32));
        for i in 0..OPS as usize {
            // SAFETY: `user - 32 .. user` lies in the scratch block, 16-aligned.
            unsafe { AllocHeader::write(user, AllocHeader::new(Method::Pool, 7, 32, i, 96)) };
            black_box(user);
        }
    })
}

fn header_verify() -> Run {
    let mut s = Box::new(Scratch([0; 64]));
    let user = s.0.as_mut_ptr().wrapping_add(32);
    // SAFETY: as in `header_write`.
    unsafe { AllocHeader::write(user, AllocHeader::new(Method::Pool, 7, 32, 64, 96)) };
    Box::new(move || {
        let _keep = &s;
        for _ in 0..OPS {
            // SAFETY: as above.
            black_box(unsafe { AllocHeader::verify(black_box(user)) });
        }
    })
}

/// A page of 64-byte blocks over 64 KiB of its own, fully carved.
fn carved_page() -> (Box<Page>, Vec<u128>) {
    // The page's 64 KiB at a 64 KiB-aligned address inside a buffer twice that size, as a
    // segment's pages are: free-list links are stored as `next ^ block` and checked to stay
    // within 1 MiB, which holds for blocks of one page only if the page does not straddle a
    // 1 MiB boundary (a plain 64 KiB Vec sometimes did: `make profile` then aborted on a
    // "corrupted free list" that was not).
    const PAGE: usize = 64 * 1024;
    let mut mem = vec![0u128; 2 * PAGE / 16];
    let at = mem.as_mut_ptr() as usize;
    let start = (at + PAGE - 1) & !(PAGE - 1);
    let mut page = Box::new(Page::EMPTY);
    // SAFETY: a record of our own, seen by no other thread; `start .. start + PAGE` lies
    // inside `mem`, which the caller keeps alive with the page.
    unsafe { Page::init(&mut *page, 3, 64, start as *mut u8, PAGE) };
    // SAFETY: the page owns `mem`; extend carves inside it.
    while unsafe { page.extend() } {}
    (page, mem)
}

fn freelist_pop() -> Run {
    let (page, mem) = carved_page();
    let head = page.free.get();
    Box::new(move || {
        let _keep = &mem;
        for _ in 0..OPS {
            // SAFETY: the page holds 1024 free blocks; we pop 1000 and restore below.
            black_box(unsafe { page.pop() });
        }
        page.free.set(head);
        page.used.set(0);
    })
}

fn freelist_push() -> Run {
    let (page, mem) = carved_page();
    let blocks: Vec<*mut Block> = (0..OPS)
        // SAFETY: as in `freelist_pop`.
        .map(|_| unsafe { page.pop() })
        .collect();
    let (empty_head, used) = (page.free.get(), page.used.get());
    Box::new(move || {
        let _keep = &mem;
        for &b in &blocks {
            // SAFETY: each block was popped from this page and is pushed back once.
            unsafe { page.push(black_box(b)) };
        }
        page.free.set(empty_head);
        page.used.set(used);
    })
}

/// The 64 B pair and batch probes run each allocator through its concrete type with a
/// constant layout, as a Rust program allocating a 64-byte value does (`Box::new`): the
/// counts are the allocator's own fast paths plus a loop. (An allocator whose fast path
/// inlines into the caller, as hakmem's does, can fold the size class at compile time;
/// a C allocator behind a call cannot. That difference is real, and measured.)
fn pair_run<A: GlobalAlloc + Sync + 'static>(a: &'static A) -> Run {
    const L: Layout = match Layout::from_size_align(64, 8) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
    Box::new(move || {
        for _ in 0..OPS {
            workloads::pair_static(a, L);
        }
    })
}

fn batch_run<A: GlobalAlloc + Sync + 'static>(a: &'static A) -> Run {
    const L: Layout = match Layout::from_size_align(64, 8) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
    let mut slots = vec![std::ptr::null_mut(); OPS as usize];
    Box::new(move || workloads::batch_static(a, L, &mut slots))
}

/// Confirms and warms `name` (one batch), then builds its run with `make`.
fn with_peer(name: &str, pair: bool) -> Run {
    let peer = peers::by_name(name).unwrap();
    let l = Layout::from_size_align(64, 8).unwrap();
    peers::confirm_served(&peer, l);
    let mut slots = vec![std::ptr::null_mut(); OPS as usize];
    workloads::batch(peer.alloc, l, &mut slots);
    // Each allocator through its concrete type (a monomorphised run per peer).
    macro_rules! pick {
        ($($n:literal => $s:path),*) => {
            match name {
                $($n => if pair { pair_run(&$s) } else { batch_run(&$s) },)*
                _ => unreachable!("unknown peer {name}"),
            }
        };
    }
    crate::for_each_peer!(pick)
}

/// The default front with the checked mode's validation before every free, as
/// `HAKMEM_CHECK=1` runs it (the check walks the page's free lists: its cost grows with the
/// free blocks of the page, here a page carved 16 KiB at a time).
struct CheckedAuto;

// SAFETY: the default front's blocks; `free_checked` frees exactly as `free` after checking.
unsafe impl GlobalAlloc for CheckedAuto {
    #[inline(always)]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded; then the checked mode's work on a fresh block, as the C ABI's
        // `malloc` does it.
        unsafe {
            let p = peers::HAKMEM.alloc(l);
            hakmem::front::api::after_alloc(p);
            p
        }
    }
    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` is a live block of the default front.
        unsafe { hakmem::front::free_checked(hakmem::config::Front::Auto, p) }
    }
}

static CHECKED: CheckedAuto = CheckedAuto;

/// 64 B malloc, one word written (as a program writes its block: a block freed untouched
/// still holds its free-list link and costs the check a walk of the page's lists), free.
fn pair_checked() -> Run {
    let mut run = with_peer("hakmem", true); // confirms hakmem serves, warms the page
    run();
    let l = Layout::from_size_align(64, 8).unwrap();
    Box::new(move || {
        for i in 0..OPS as usize {
            // SAFETY: a 64-byte block, written within its bounds, freed once.
            unsafe {
                let p = CHECKED.alloc(l);
                (p as *mut usize).write(black_box(i));
                CHECKED.dealloc(p, l);
            }
        }
    })
}

/// The reuse front's pair with only the model steps in `STEPS`
/// (`hakmem::front::reuse::alloc_steps`), called directly: the subtraction probes.
fn reuse_pair_steps<const STEPS: u8>() -> Run {
    use hakmem::front::reuse;
    // Warm the page (and the thread's caches) once.
    for _ in 0..OPS {
        // SAFETY: allocated and freed with the same steps.
        unsafe { reuse::free_steps::<STEPS>(reuse::alloc_steps::<STEPS>(64, Site::UNKNOWN)) };
    }
    Box::new(|| {
        for _ in 0..OPS {
            let p = reuse::alloc_steps::<STEPS>(black_box(64), Site::UNKNOWN);
            // SAFETY: a live block of these steps, freed once.
            unsafe { reuse::free_steps::<STEPS>(black_box(p)) };
        }
    })
}

/// Time by subtraction for the reuse path's own steps: the pair with every step (`full`),
/// and for each step the pair without it. A step's time is full − without, measured
/// interleaved (`hakprof steps`); the pool steps cannot be taken out of a working path.
pub struct Subtraction {
    pub full: fn() -> Run,
    pub without: [Without; 3],
}

/// A step's name (as `profiling::attrib::STEPS` spells it) and the pair without it.
pub type Without = (&'static str, fn() -> Run);

pub const REUSE_SUBTRACTION: Subtraction = {
    use hakmem::front::reuse::{ALL, HEADER, LEARNER, SITE_HASH};
    Subtraction {
        full: reuse_pair_steps::<ALL>,
        without: [
            ("call-site hash", reuse_pair_steps::<{ ALL & !SITE_HASH }>),
            ("learner selection", reuse_pair_steps::<{ ALL & !LEARNER }>),
            (
                "header write + read + magic check",
                reuse_pair_steps::<{ ALL & !HEADER }>,
            ),
        ],
    }
};

fn reuse_path() -> Run {
    with_peer("hakmem-reuse", true)
}

fn pool_path() -> Run {
    with_peer("hakmem-pool", true)
}

fn pair_probe(name: &str) -> Run {
    with_peer(name, true)
}

fn batch_probe(name: &str) -> Run {
    with_peer(name, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_runs_and_names_are_unique() {
        let all = all();
        for p in &all {
            let mut run = (p.make)();
            run();
            run();
        }
        let mut names: Vec<&str> = all.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(by_name("reuse_path").is_some() && by_name("nope").is_none());
    }
}
