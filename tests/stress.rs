//! Multi-threaded stress through `GlobalAlloc`: 4 threads, random sizes 1 B – 4 MiB,
//! random alignments up to 1 MiB, `realloc`, and blocks handed to another thread to free.
//! Every block carries a pattern that is checked before it is freed.

mod common;

use common::{check, fill, Rng};
use hakmem::Hakmem;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

#[global_allocator]
static GLOBAL: Hakmem = Hakmem;

struct Block {
    p: *mut u8,
    layout: Layout,
    seed: u8,
    orig: u64,
}
// SAFETY: a Block is plain ownership of a heap block; moving it between threads is the point.
unsafe impl Send for Block {}

impl Block {
    fn new(rng: &mut Rng) -> Block {
        let layout = Layout::from_size_align(rng.size(), rng.align()).unwrap();
        let p = unsafe { GLOBAL.alloc(layout) };
        assert!(!p.is_null(), "allocation of {layout:?} failed");
        assert_eq!(
            p as usize % layout.align(),
            0,
            "misaligned {layout:?} at {p:p}"
        );
        let seed = rng.next() as u8;
        unsafe { fill(p, layout.size(), seed) };
        Block {
            p,
            layout,
            seed,
            orig: p as u64,
        }
    }

    fn verify(&self) {
        assert!(
            unsafe {
                check(
                    self.p,
                    self.layout.size(),
                    self.layout.size(),
                    self.seed,
                    self.orig,
                )
            },
            "block {:p} ({:?}) corrupted",
            self.p,
            self.layout
        );
    }

    fn realloc(&mut self, rng: &mut Rng) {
        self.verify();
        let new = rng.size();
        let q = unsafe { GLOBAL.realloc(self.p, self.layout, new) };
        assert!(!q.is_null());
        assert_eq!(
            q as usize % self.layout.align(),
            0,
            "realloc lost alignment"
        );
        let keep = self.layout.size().min(new);
        // The kept prefix moved with the block.
        let ok = unsafe { check(q, keep, self.layout.size(), self.seed, self.orig) };
        assert!(ok, "realloc {:?} -> {new} lost contents", self.layout);
        self.p = q;
        self.layout = Layout::from_size_align(new, self.layout.align()).unwrap();
        self.seed = rng.next() as u8;
        unsafe { fill(q, new, self.seed) };
        self.orig = q as u64;
    }

    fn free(self) {
        self.verify();
        unsafe { GLOBAL.dealloc(self.p, self.layout) };
    }
}

fn worker(id: u64, ops: usize, to_next: mpsc::Sender<Block>, from_prev: mpsc::Receiver<Block>) {
    let mut rng = Rng::new(0xC0FFEE + id);
    let mut live: Vec<Block> = Vec::new();
    for op in 0..ops {
        if op % 50_000 == 0 {
            hakmem::pool::thread::check_current(); // the heap's invariants hold mid-run
        }
        for b in from_prev.try_iter() {
            b.free(); // a cross-thread free
        }
        match rng.below(100) {
            0..=49 => live.push(Block::new(&mut rng)),
            50..=79 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                live.swap_remove(i).free();
            }
            80..=89 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                let _ = to_next.send(live.swap_remove(i));
            }
            90..=99 if !live.is_empty() => {
                let i = rng.below(live.len() as u64) as usize;
                live[i].realloc(&mut rng);
            }
            _ => {}
        }
        // Keep the working set bounded.
        while live.len() > 2000 {
            live.swap_remove(0).free();
        }
    }
    for b in live {
        b.free();
    }
    drop(to_next);
    for b in from_prev.iter() {
        b.free();
    }
    hakmem::pool::thread::check_current();
}

#[test]
fn four_threads_random_sizes_alignments_realloc_and_cross_thread_frees() {
    const THREADS: usize = 4;
    // Per thread: 1.6 M operations in all by default; the front/mode variants run fewer.
    let ops: usize = std::env::var("HAKMEM_STRESS_OPS").map_or(400_000, |v| v.parse().unwrap());
    let before = hakmem::stats::snapshot();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let mut rxs: Vec<Option<_>> = rxs.into_iter().map(Some).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let tx = txs[(i + 1) % THREADS].clone();
            let rx = rxs[i].take().unwrap();
            std::thread::spawn(move || worker(i as u64, ops, tx, rx))
        })
        .collect();
    drop(txs);
    for h in handles {
        h.join().unwrap();
    }
    let after = hakmem::stats::snapshot();
    assert!(
        after.allocations() - before.allocations() > ops as u64,
        "hakmem served the test"
    );
    assert!(
        after.big.allocs > before.big.allocs,
        "big blocks were exercised"
    );
    assert!(
        after.pool.remote_frees > before.pool.remote_frees,
        "cross-thread frees happened"
    );
    if after.config.front != hakmem::config::Front::Reuse {
        assert!(
            after.syscalls.mremap > before.syscalls.mremap,
            "big reallocs used mremap"
        );
    }
}

/// The same stress in a child process per front end and mode.
#[test]
fn stress_under_every_front_and_mode() {
    if std::env::var("HAKMEM_STRESS_OPS").is_ok() {
        return; // already a child
    }
    let variants: [&[(&str, &str)]; 7] = [
        &[("HAKMEM_FRONT", "reuse")],
        &[("HAKMEM_FRONT", "pool")],
        &[("HAKMEM_MODE", "minimal")],
        &[("HAKMEM_MODE", "research")],
        &[("HAKMEM_MODE", "learning"), ("HAKMEM_FRONT", "reuse")],
        // Huge pages: 2 MiB-aligned blocks, probes measured while other threads free.
        &[("HAKMEM_THP", "site")],
        &[("HAKMEM_THP", "1"), ("HAKMEM_MODE", "research")],
    ];
    for env in variants {
        let out = common::run_test_in_child(
            "four_threads_random_sizes_alignments_realloc_and_cross_thread_frees",
            "HAKMEM_STRESS_OPS",
            "100000",
            env,
        );
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "stress under {env:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn thread_churn_reuses_parked_heaps() {
    let before = hakmem::stats::snapshot().pool.heaps;
    for _ in 0..200 {
        std::thread::spawn(|| {
            let v: Vec<Box<[u8; 100]>> = (0..100).map(|_| Box::new([7u8; 100])).collect();
            assert!(v.iter().all(|b| b[99] == 7));
        })
        .join()
        .unwrap();
    }
    let after = hakmem::stats::snapshot().pool.heaps;
    // 200 sequential threads need only a handful of heaps: exited threads' heaps are adopted.
    assert!(after - before <= 8, "heaps grew from {before} to {after}");
}
