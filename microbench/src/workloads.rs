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

// ---------------------------------------------------------------------------------------
// Big blocks (the same shapes as the C programs `bigbatch_*.c`, `bigchurn.c` and
// `bigrealloc.c`): every page of a block is written once, as a program would.
// ---------------------------------------------------------------------------------------

const PAGE: usize = 4096;

/// The big-block batches: (label, block size, blocks per batch).
pub const BIG_BATCHES: [(&str, usize, usize); 3] = [
    ("1000x512KiB", 512 << 10, 1000),
    ("200x2MiB", 2 << 20, 200),
    ("50x8MiB", 8 << 20, 50),
];

/// Writes one byte in each page of `[p, p + len)`; aborts on a null block.
fn touch_pages(p: *mut u8, from: usize, len: usize) {
    assert!(!p.is_null(), "out of memory in a big-block workload");
    for o in (from..len).step_by(PAGE) {
        // SAFETY: `o < len`, inside the caller's block.
        unsafe { p.add(o).write_volatile(o as u8) };
    }
}

/// `slots.len()` blocks of `layout`, each page written, then all freed: a big working set
/// that comes back every round.
pub fn big_batch(a: &dyn GlobalAlloc, layout: Layout, slots: &mut [*mut u8]) {
    for s in slots.iter_mut() {
        // SAFETY: a non-zero layout.
        *s = unsafe { a.alloc(layout) };
        touch_pages(*s, 0, layout.size());
    }
    for &p in slots.iter() {
        // SAFETY: allocated above by `a` with `layout`.
        unsafe { a.dealloc(p, layout) };
    }
}

/// Big churn: `LIVE` blocks of random 5–25 MiB live; each call frees one and replaces it
/// with a new random size (pages written). The blocks are freed when the churn is dropped.
pub struct BigChurn {
    alloc: &'static (dyn GlobalAlloc + Sync),
    live: Vec<(*mut u8, Layout)>,
    seed: u64,
}

impl BigChurn {
    pub const LIVE: usize = 20;

    pub fn new(alloc: &'static (dyn GlobalAlloc + Sync)) -> BigChurn {
        let mut c = BigChurn {
            alloc,
            live: Vec::with_capacity(Self::LIVE),
            seed: 99,
        };
        for _ in 0..Self::LIVE {
            let b = c.fresh();
            c.live.push(b);
        }
        c
    }

    fn fresh(&mut self) -> (*mut u8, Layout) {
        // xorshift64*, as in the C programs.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        let r = self.seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let size = (5 << 20) + (r % (20 << 20)) as usize;
        let layout = Layout::from_size_align(size, 16).unwrap();
        // SAFETY: a non-zero layout.
        let p = unsafe { self.alloc.alloc(layout) };
        touch_pages(p, 0, size);
        (p, layout)
    }

    /// One replacement.
    pub fn step(&mut self) {
        let k = (self.seed % Self::LIVE as u64) as usize;
        let (p, l) = self.live[k];
        // SAFETY: a live block of ours, allocated with `l`.
        unsafe { self.alloc.dealloc(p, l) };
        self.live[k] = self.fresh();
    }
}

impl Drop for BigChurn {
    fn drop(&mut self) {
        for &(p, l) in &self.live {
            // SAFETY: each live block was allocated by `alloc` with its layout.
            unsafe { self.alloc.dealloc(p, l) };
        }
    }
}

/// Big realloc growth: a block grows from 1 MiB to 64 MiB by doubling (each new page
/// written; the old contents checked at one place), then is freed.
pub fn big_realloc(a: &dyn GlobalAlloc) {
    let mut size = 1usize << 20;
    let mut layout = Layout::from_size_align(size, 16).unwrap();
    // SAFETY: a non-zero layout; every realloc passes the block's current layout.
    unsafe {
        let mut p = a.alloc(layout);
        touch_pages(p, 0, size);
        while size < 64 << 20 {
            p = a.realloc(p, layout, size * 2);
            touch_pages(p, size, size * 2);
            assert_eq!(
                p.add(size - PAGE).read(),
                ((size - PAGE) as u8),
                "lost contents"
            );
            size *= 2;
            layout = Layout::from_size_align(size, 16).unwrap();
        }
        a.dealloc(p, layout);
    }
}
