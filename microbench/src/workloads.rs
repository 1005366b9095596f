//! Allocation workloads through any `GlobalAlloc`.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

/// One malloc + free pair: the latency of the fast paths (one page, emptied every time).
#[inline(never)]
pub fn pair(a: &dyn GlobalAlloc, layout: Layout) {
    // SAFETY: non-zero layout; freed with the same allocator and layout.
    unsafe {
        let p = a.alloc(layout);
        black_box(p);
        a.dealloc(p, layout);
    }
}

/// `slots.len()` allocations, then all their frees in the same order: throughput with
/// many live blocks, the workload real programs look like.
#[inline(never)]
pub fn batch(a: &dyn GlobalAlloc, layout: Layout, slots: &mut [*mut u8]) {
    // SAFETY: each slot gets a block from `a` and gives it back to `a`.
    unsafe {
        for s in slots.iter_mut() {
            *s = a.alloc(layout);
        }
        black_box(&mut *slots);
        for &p in slots.iter() {
            a.dealloc(p, layout);
        }
    }
}

/// The same pair through a concrete allocator type, inlined: what a program that names its
/// global allocator runs (no dynamic dispatch). The instruction-count probes use this.
/// `black_box` keeps LLVM from deleting the pair outright: it knows `malloc` and `free`
/// (the `System` peer) and removes a malloc immediately freed.
#[inline(always)]
pub fn pair_static<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: non-zero layout; freed with the same allocator and layout.
    unsafe {
        let p = a.alloc(layout);
        black_box(p);
        a.dealloc(p, layout);
    }
}

/// A batch through a concrete allocator type, inlined.
#[inline(always)]
pub fn batch_static<A: GlobalAlloc>(a: &A, layout: Layout, slots: &mut [*mut u8]) {
    // SAFETY: each slot gets a block from `a` and gives it back to `a`.
    unsafe {
        for s in slots.iter_mut() {
            *s = a.alloc(layout);
        }
        black_box(&mut *slots);
        for &p in slots.iter() {
            a.dealloc(p, layout);
        }
    }
}
