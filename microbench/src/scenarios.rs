//! The workload scenarios, defined once so the benches and the profiler run the same code:
//! the original hakmem's four (json, mir, vm and mixed: allocate, touch every page, free),
//! and a larson-style server simulation (threads allocate and free random sizes 8–1000 B and
//! hand their blocks to the next thread).

use core::alloc::{GlobalAlloc, Layout};
use std::sync::{Arc, Barrier, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Json,
    Mir,
    Vm,
    Mixed,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [Scenario::Json, Scenario::Mir, Scenario::Vm, Scenario::Mixed];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Json => "json",
            Scenario::Mir => "mir",
            Scenario::Vm => "vm",
            Scenario::Mixed => "mixed",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.name() == s)
    }

    /// (block size, blocks per run) for the single-size scenarios.
    pub fn shape(self) -> (usize, usize) {
        match self {
            Scenario::Json => (64 << 10, 1000),
            Scenario::Mir => (256 << 10, 100),
            Scenario::Vm => (2 << 20, 100),
            Scenario::Mixed => (0, 1000),
        }
    }

    /// Runs the scenario once through `a`; returns the number of allocations made.
    pub fn run(self, a: &dyn GlobalAlloc) -> usize {
        match self {
            Scenario::Mixed => mixed(a),
            _ => {
                let (size, n) = self.shape();
                churn(a, size, n)
            }
        }
    }
}

/// Writes one byte in every page of the block, as a program using it would.
///
/// # Safety
/// `p` must be valid for writes of `size` bytes.
#[inline(never)]
pub unsafe fn touch(p: *mut u8, size: usize) {
    let mut off = 0;
    while off < size {
        // SAFETY: `off < size`, and the caller guarantees the block holds `size` bytes.
        unsafe { p.add(off).write_volatile(1) };
        off += 4096;
    }
}

/// One thread's slots in the larson simulation: (block address, size), handed on.
type Mailbox = Mutex<Vec<(usize, usize)>>;

fn alloc_checked(a: &dyn GlobalAlloc, l: Layout) -> *mut u8 {
    // SAFETY: non-zero layout.
    let p = unsafe { a.alloc(l) };
    assert!(
        !p.is_null(),
        "scenario allocation of {} bytes failed",
        l.size()
    );
    p
}

/// Allocate, touch, free, `n` times.
pub fn churn(a: &dyn GlobalAlloc, size: usize, n: usize) -> usize {
    let l = Layout::from_size_align(size, 16).unwrap();
    for _ in 0..n {
        let p = alloc_checked(a, l);
        // SAFETY: a live block of `size` bytes.
        unsafe { touch(p, size) };
        // SAFETY: allocated above with `l`.
        unsafe { a.dealloc(p, l) };
    }
    n
}

/// Interleaved sizes, like a compiler: a 64 KiB block every step, 256 KiB every 10th,
/// 2 MiB every 100th, each kind keeping its last 4 blocks alive.
pub fn mixed(a: &dyn GlobalAlloc) -> usize {
    const KINDS: [(usize, usize); 3] = [(64 << 10, 1), (256 << 10, 10), (2 << 20, 100)];
    let mut live: [[*mut u8; 4]; 3] = [[core::ptr::null_mut(); 4]; 3];
    let mut n = 0;
    for step in 0..1000usize {
        for (k, &(size, every)) in KINDS.iter().enumerate() {
            if step % every != 0 {
                continue;
            }
            let l = Layout::from_size_align(size, 16).unwrap();
            let slot = &mut live[k][(step / every) % 4];
            if !slot.is_null() {
                // SAFETY: allocated below with `l` in an earlier step.
                unsafe { a.dealloc(*slot, l) };
            }
            *slot = alloc_checked(a, l);
            // SAFETY: a live block of `size` bytes.
            unsafe { touch(*slot, size) };
            n += 1;
        }
    }
    for (k, &(size, _)) in KINDS.iter().enumerate() {
        let l = Layout::from_size_align(size, 16).unwrap();
        for &p in &live[k] {
            if !p.is_null() {
                // SAFETY: allocated above with `l`.
                unsafe { a.dealloc(p, l) };
            }
        }
    }
    n
}

/// Larson-style: `threads` threads, each with 1000 slots, do `rounds` rounds of
/// `ops_per_round` random replacements (free the slot's block, allocate 8–1000 B), then
/// hand their slots to the next thread, so most frees are of another thread's blocks.
/// Returns the total number of allocations.
pub fn larson(
    a: &'static (dyn GlobalAlloc + Sync),
    threads: usize,
    rounds: usize,
    ops_per_round: usize,
    seed: u64,
) -> usize {
    const SLOTS: usize = 1000;
    let boxes: Arc<Vec<Mailbox>> = Arc::new(
        (0..threads)
            .map(|_| Mutex::new(vec![(0, 0); SLOTS]))
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (boxes, barrier) = (boxes.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut rng = hakmem::learn::rng::Rng::new(seed ^ (t as u64 + 1));
                let mut n = 0;
                for round in 0..rounds {
                    let mine = (t + round) % threads;
                    let mut slots = boxes[mine].lock().unwrap();
                    for _ in 0..ops_per_round {
                        let i = rng.below(SLOTS);
                        let (p, size) = slots[i];
                        if p != 0 {
                            // SAFETY: allocated below (by this or another thread) with this size.
                            unsafe {
                                a.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8))
                            };
                        }
                        let size = 8 + rng.below(993);
                        let l = Layout::from_size_align(size, 8).unwrap();
                        let q = alloc_checked(a, l);
                        // SAFETY: the block holds at least 8 bytes.
                        unsafe { q.write_volatile(t as u8) };
                        slots[i] = (q as usize, size);
                        n += 1;
                    }
                    drop(slots);
                    barrier.wait();
                }
                n
            })
        })
        .collect();
    let total = handles.into_iter().map(|h| h.join().unwrap()).sum();
    for b in boxes.iter() {
        for &(p, size) in b.lock().unwrap().iter() {
            if p != 0 {
                // SAFETY: live blocks allocated in the rounds above.
                unsafe { a.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
            }
        }
    }
    total
}

/// Producer/consumer: one thread allocates `n` blocks of 16–512 B and hands them, in
/// batches of 256, to a second thread that frees them (every free is a remote free).
/// Returns the number of allocations.
pub fn producer_consumer(a: &'static (dyn GlobalAlloc + Sync), n: usize, seed: u64) -> usize {
    const BATCH: usize = 256;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(usize, usize)>>(4);
    let consumer = std::thread::spawn(move || {
        for batch in rx {
            for (p, size) in batch {
                // SAFETY: allocated by the producer with this size, handed over once.
                unsafe { a.dealloc(p as *mut u8, Layout::from_size_align_unchecked(size, 8)) };
            }
        }
    });
    let mut rng = hakmem::learn::rng::Rng::new(seed);
    let mut batch = Vec::with_capacity(BATCH);
    for _ in 0..n {
        let size = 16 + rng.below(497);
        let p = alloc_checked(a, Layout::from_size_align(size, 8).unwrap());
        // SAFETY: the block holds at least 16 bytes.
        unsafe { p.write_volatile(1) };
        batch.push((p as usize, size));
        if batch.len() == BATCH {
            tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .unwrap();
        }
    }
    tx.send(batch).unwrap();
    drop(tx);
    consumer.join().unwrap();
    n
}
