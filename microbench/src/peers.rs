//! The allocators measured side by side, each used directly through `GlobalAlloc` (none is
//! this binary's global allocator), and the proof of which one served a workload: every
//! bench and profile confirms it before measuring (the original hakmem's benchmarks once
//! silently measured glibc).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;

pub static HAKMEM: hakmem::AutoFront = hakmem::AutoFront;
pub static HAKMEM_REUSE: hakmem::ReuseFront = hakmem::ReuseFront;
pub static HAKMEM_POOL: hakmem::PoolFront = hakmem::PoolFront;
pub static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
pub static SYSTEM: System = System;

extern "C" {
    // mimalloc (linked statically by the `mimalloc` crate).
    fn mi_is_in_heap_region(p: *const c_void) -> bool;
    // jemalloc (linked statically by `tikv-jemallocator`, symbols prefixed `_rjem_`).
    fn _rjem_malloc_usable_size(p: *const c_void) -> usize;
}

/// The one list of the allocators measured, hakmem's three fronts first: each name with
/// the static that serves it. Every other list is made from it: `ALL`, the peer probes and
/// their concrete-type runs (`probes`), the report's columns (`HAKMEM_FRONTS`,
/// `PRODUCTION`), gungraun's probe names (`iai`). `for_each_peer!(m)` calls `m!` with
/// `"name" => path` pairs.
#[macro_export]
macro_rules! for_each_peer {
    ($m:ident) => {
        $m! {
            "hakmem" => $crate::peers::HAKMEM,
            "hakmem-reuse" => $crate::peers::HAKMEM_REUSE,
            "hakmem-pool" => $crate::peers::HAKMEM_POOL,
            "system" => $crate::peers::SYSTEM,
            "mimalloc" => $crate::peers::MIMALLOC,
            "jemalloc" => $crate::peers::JEMALLOC
        }
    };
}

/// A named allocator.
#[derive(Clone, Copy)]
pub struct Peer {
    pub name: &'static str,
    pub alloc: &'static (dyn GlobalAlloc + Sync),
}

macro_rules! peer_array {
    ($($name:literal => $alloc:path),*) => {
        [$(Peer { name: $name, alloc: &$alloc }),*]
    };
}

/// hakmem's three front ends, then the production peers.
pub const ALL: [Peer; 6] = for_each_peer!(peer_array);
/// hakmem's fronts, as the report's columns name them.
pub const HAKMEM_FRONTS: [&str; 3] = [ALL[0].name, ALL[1].name, ALL[2].name];
/// The production allocators hakmem is measured against.
pub const PRODUCTION: [&str; 3] = [ALL[3].name, ALL[4].name, ALL[5].name];

pub fn by_name(name: &str) -> Option<Peer> {
    ALL.into_iter().find(|p| p.name == name)
}

/// Whether `p` is a block hakmem handed out (its pool segments or its big-block registry).
pub fn is_hakmem_block(p: *const u8) -> bool {
    hakmem::pool::segment::is_pool(p) || hakmem::big::registry::contains(p)
}

/// Which allocator owns `p`, asking each one's own ownership test.
pub fn owner_of(p: *const u8) -> &'static str {
    if is_hakmem_block(p) {
        return "hakmem";
    }
    // SAFETY: mi_is_in_heap_region only compares addresses against mimalloc's segments.
    if unsafe { mi_is_in_heap_region(p as *const c_void) } {
        return "mimalloc";
    }
    "system-or-jemalloc"
}

/// Allocates one block of `layout` through `peer` and checks that `peer` really served it:
/// hakmem's counters must move and the block be hakmem's; mimalloc's must be in mimalloc's
/// heap; jemalloc's must be known to jemalloc; glibc's to glibc. Panics with the reason
/// otherwise: a benchmark must never measure the wrong allocator.
pub fn confirm_served(peer: &Peer, layout: Layout) {
    let before = hakmem::stats::snapshot().allocations();
    // SAFETY: a valid non-zero layout; the block is freed below by the same allocator.
    let p = unsafe { peer.alloc.alloc(layout) };
    assert!(
        !p.is_null(),
        "{}: allocation of {layout:?} failed",
        peer.name
    );
    let counted = hakmem::stats::snapshot().allocations() - before;
    let owner = owner_of(p);
    let ok = match peer.name {
        n if n.starts_with("hakmem") => owner == "hakmem" && counted >= 1,
        "mimalloc" => owner == "mimalloc",
        // SAFETY: `p` is not hakmem's or mimalloc's; these two queries only run when the
        // named allocator is the one that should own it.
        "jemalloc" => {
            owner != "hakmem"
                && owner != "mimalloc"
                && unsafe { _rjem_malloc_usable_size(p as *const c_void) } >= layout.size()
        }
        // SAFETY: as above, for glibc.
        "system" => {
            owner != "hakmem"
                && owner != "mimalloc"
                && unsafe { libc_malloc_usable_size(p) } >= layout.size()
        }
        _ => false,
    };
    // SAFETY: `p` came from `peer.alloc` with this layout.
    unsafe { peer.alloc.dealloc(p, layout) };
    assert!(
        ok,
        "{} did not serve {layout:?} (owner {owner}, hakmem counted {counted})",
        peer.name
    );
}

unsafe fn libc_malloc_usable_size(p: *mut u8) -> usize {
    extern "C" {
        fn malloc_usable_size(p: *mut c_void) -> usize;
    }
    // SAFETY: the caller passes a block of glibc's malloc.
    unsafe { malloc_usable_size(p as *mut c_void) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_is_confirmed_and_a_wrong_claim_is_caught() {
        for peer in ALL {
            for size in [16, 4096, 2 << 20] {
                confirm_served(&peer, Layout::from_size_align(size, 8).unwrap());
            }
        }
        // Claiming that glibc's blocks are hakmem's must fail.
        let liar = Peer {
            name: "hakmem",
            alloc: &SYSTEM,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            confirm_served(&liar, Layout::from_size_align(64, 8).unwrap())
        }));
        assert!(r.is_err());
    }
}
