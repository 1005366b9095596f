//! The allocators measured side by side, each used directly through `GlobalAlloc` (none is
//! this binary's global allocator), and the proof of which one served a workload.

use std::alloc::{GlobalAlloc, Layout, System};

pub static HAKMEM: hakmem::Hakmem = hakmem::Hakmem;
pub static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
pub static SYSTEM: System = System;

/// A named allocator.
pub struct Peer {
    pub name: &'static str,
    pub alloc: &'static (dyn GlobalAlloc + Sync),
}

/// Every allocator in a comparison, hakmem first.
pub fn all() -> [Peer; 4] {
    [
        Peer {
            name: "hakmem",
            alloc: &HAKMEM,
        },
        Peer {
            name: "system",
            alloc: &SYSTEM,
        },
        Peer {
            name: "mimalloc",
            alloc: &MIMALLOC,
        },
        Peer {
            name: "jemalloc",
            alloc: &JEMALLOC,
        },
    ]
}

/// Whether `p` is a block hakmem handed out (its pool segments or its big-block registry).
pub fn is_hakmem_block(p: *const u8) -> bool {
    hakmem::pool::segment::is_pool(p) || hakmem::registry::contains(p)
}

/// Checks that `peer` really serves allocations: for hakmem, its own counters must move
/// and the block must be one of its own; for the others, the block must not be hakmem's
/// and glibc's `malloc_usable_size` must not know it unless the peer is glibc itself.
/// Panics with the reason otherwise (a benchmark must never measure the wrong allocator).
pub fn confirm_served(peer: &Peer, layout: Layout) {
    let before = hakmem::stats::snapshot().allocations();
    // SAFETY: a valid non-zero layout; the block is freed below by the same allocator.
    let p = unsafe { peer.alloc.alloc(layout) };
    assert!(!p.is_null(), "{}: allocation failed", peer.name);
    let counted = hakmem::stats::snapshot().allocations() - before;
    let ours = is_hakmem_block(p);
    // SAFETY: `p` came from `peer.alloc` with this layout.
    unsafe { peer.alloc.dealloc(p, layout) };
    match peer.name {
        "hakmem" => assert!(ours && counted >= 1, "hakmem did not serve {layout:?}"),
        _ => assert!(!ours && counted == 0, "{} was served by hakmem", peer.name),
    }
}
