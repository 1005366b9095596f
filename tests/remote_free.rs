//! Remote frees, as the pool's counters see them: one thread allocates, another frees
//! every block; the frees go back in batches (one compare-and-swap each), the owner
//! collects them on its next refill and reuses the blocks (no new mapping). Alone in its
//! test binary: the counters are the process's.

use hakmem::ffi::{hak_free, hak_malloc};
use hakmem::stats;
use std::sync::mpsc;

struct Ptr(*mut std::ffi::c_void);
// SAFETY: plain ownership of a block, handed to the thread that frees it.
unsafe impl Send for Ptr {}

const N: usize = 20_000;

#[test]
fn blocks_freed_by_another_thread_go_back_in_batches_and_are_reused() {
    let (to_freer, freer_in) = mpsc::channel::<Vec<Ptr>>();
    let (done, freed) = mpsc::channel::<()>();
    let freer = std::thread::spawn(move || {
        for batch in freer_in {
            for p in batch {
                // SAFETY: a live block of this allocator, freed once.
                unsafe { hak_free(p.0) };
            }
            done.send(()).unwrap();
        }
    });
    let alloc_round = || -> Vec<Ptr> {
        (0..N)
            .map(|i| {
                let p = hak_malloc(64);
                assert!(!p.is_null());
                // SAFETY: 64 writable bytes.
                unsafe { (p as *mut u64).write(i as u64) };
                Ptr(p)
            })
            .collect()
    };
    to_freer.send(alloc_round()).unwrap(); // the heap grows to N blocks
    freed.recv().unwrap();
    let before = stats::snapshot();
    let maps_before = before.syscalls.mmap;
    to_freer.send(alloc_round()).unwrap(); // ... and is reused: the first round came back
    freed.recv().unwrap();
    let after = stats::snapshot();
    let maps_after = after.syscalls.mmap;
    // Batches weigh their blocks by size: after a small block, 256 KiB blocks still go
    // one per batch (a batch holds ~256 KiB at most, whatever came first).
    let mut mixed = vec![Ptr(hak_malloc(64))];
    mixed.extend((0..8).map(|_| Ptr(hak_malloc(200 << 10))));
    let batches_before = stats::snapshot().pool.remote_batches;
    to_freer.send(mixed).unwrap();
    freed.recv().unwrap();
    let large_batches = stats::snapshot().pool.remote_batches - batches_before;
    drop(to_freer);
    freer.join().unwrap(); // its exit sends what it still holds
    assert!(
        large_batches >= 8,
        "{large_batches} batches for 8 large blocks"
    );

    let (b, a) = (before.pool, after.pool);
    assert!(a.remote_frees - b.remote_frees >= N as u64, "{a:?}");
    let batches = a.remote_batches - b.remote_batches;
    let per_batch = (a.remote_frees - b.remote_frees) as f64 / batches as f64;
    assert!(per_batch >= 16.0, "{per_batch:.1} blocks per batch: {a:?}");
    assert!(a.collections > b.collections, "the owner collected: {a:?}");
    assert!(
        a.collected_blocks - b.collected_blocks >= (N - 64) as u64,
        "the first round's blocks came back: {b:?} -> {a:?}"
    );
    assert_eq!(
        maps_after, maps_before,
        "the second round reused the first's memory"
    );
}
