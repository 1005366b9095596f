//! A tiny spin lock for the allocator's few global structures (heap list, big-block
//! registry, learner state). It never allocates, so it is safe inside `malloc`; waiting
//! threads yield.
//!
//! Every lock has a rank, and there is one lock order for the whole allocator: a thread
//! that holds a lock may take only locks of a higher rank (`rank` below). The fork
//! handler (`init`) takes every lock in this order. Debug builds check the order on every
//! `lock` and panic on a violation, so the tests catch a new inversion.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// The lock order, lowest first.
pub mod rank {
    /// `learn`: the lifecycle state (LEARN / FROZEN / CANARY windows).
    pub const LIFE: u8 = 1;
    /// `learn`: the ELO leaderboard and its generator.
    pub const BRAIN: u8 = 2;
    /// `learn`: one UCB1 bandit per site (never two held at once, except by fork).
    pub const UCB: u8 = 3;
    /// `big::madvise`: the release batch.
    pub const MADVISE_BATCH: u8 = 4;
    /// `pool::heap`: the list of heaps and the parked ones.
    pub const HEAPS: u8 = 5;
    /// `registry`: the set of live big blocks.
    pub const REGISTRY: u8 = 6;
}

pub struct SpinLock<T> {
    locked: AtomicBool,
    rank: u8,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SpinLock<T> {}

pub struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// A lock of `rank` (see `rank`).
    pub const fn new(rank: u8, value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            rank,
            value: UnsafeCell::new(value),
        }
    }

    pub fn lock(&self) -> Guard<'_, T> {
        order::acquire(self.rank);
        self.spin();
        Guard { lock: self }
    }

    fn spin(&self) {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
            } else {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }

    /// Takes the lock if it comes free within about `wait_ns` (spinning, then yielding);
    /// None otherwise. For the exit report, which may run inside a signal handler (`_exit`
    /// is async-signal-safe): there the thread it interrupted may hold the lock, and
    /// waiting for it would wait forever. A try never deadlocks, so the lock order is not
    /// asserted here (the rank is still recorded while held).
    pub fn try_lock_within(&self, wait_ns: u64) -> Option<Guard<'_, T>> {
        let mut start = 0;
        let mut spins = 0u32;
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                order::note(self.rank);
                return Some(Guard { lock: self });
            }
            spins += 1;
            if spins < 64 {
                core::hint::spin_loop();
                continue;
            }
            let now = crate::os::now_ns();
            if start == 0 {
                start = now;
            } else if now.saturating_sub(start) >= wait_ns {
                return None;
            }
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }

    /// Takes the lock and keeps it (fork preparation, which takes every lock in rank
    /// order); `force_unlock` gives it back.
    pub fn lock_forever(&self) {
        self.spin();
    }

    /// Releases a lock taken by `lock_forever` (after fork, in parent and child).
    ///
    /// # Safety
    /// Only the thread that called `lock_forever` (or the child it forked) may call this.
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
        order::release(self.lock.rank);
    }
}

/// The debug-build check of the lock order: the ranks this thread holds, as a bit set.
#[cfg(debug_assertions)]
mod order {
    use core::cell::Cell;

    std::thread_local! {
        // const-initialised, no destructor: never allocates, valid during thread exit.
        static HELD: Cell<u64> = const { Cell::new(0) };
    }

    pub fn acquire(rank: u8) {
        let held = HELD.with(|h| h.get());
        let at_or_above = held & !((1u64 << rank) - 1);
        assert!(
            at_or_above == 0,
            "hakmem: lock order violated: taking rank {rank} while holding {held:#b}"
        );
        HELD.with(|h| h.set(held | 1 << rank));
    }

    /// A lock of `rank` taken by a try (no order to check: a try cannot deadlock).
    pub fn note(rank: u8) {
        HELD.with(|h| h.set(h.get() | 1 << rank));
    }

    pub fn release(rank: u8) {
        HELD.with(|h| h.set(h.get() & !(1u64 << rank)));
    }
}

#[cfg(not(debug_assertions))]
mod order {
    #[inline(always)]
    pub fn acquire(_rank: u8) {}
    #[inline(always)]
    pub fn note(_rank: u8) {}
    #[inline(always)]
    pub fn release(_rank: u8) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_serialise_and_release() {
        static L: SpinLock<u64> = SpinLock::new(rank::REGISTRY, 0);
        const N: u64 = if cfg!(miri) { 50 } else { 10_000 };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..N {
                        *L.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*L.lock(), 4 * N);
    }

    #[test]
    fn taking_locks_in_rank_order_is_allowed() {
        let a = SpinLock::new(rank::LIFE, ());
        let b = SpinLock::new(rank::BRAIN, ());
        let _ga = a.lock();
        let _gb = b.lock();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "lock order violated")]
    fn taking_a_lower_rank_while_holding_a_higher_one_panics_in_debug_builds() {
        let life = SpinLock::new(rank::LIFE, ());
        let brain = SpinLock::new(rank::BRAIN, ());
        let _gb = brain.lock();
        let _gl = life.lock();
    }

    /// A held lock is not waited for past the bound (the exit report in a signal handler
    /// whose interrupted thread holds it), and a free one is taken, whatever is held.
    #[test]
    fn a_try_gives_up_on_a_held_lock_and_takes_a_free_one_in_any_order() {
        let heaps = SpinLock::new(rank::HEAPS, 1);
        let life = SpinLock::new(rank::LIFE, 2);
        let _held = heaps.lock();
        assert!(heaps.try_lock_within(1_000_000).is_none(), "held: given up");
        let g = life.try_lock_within(1_000_000).expect("free: taken");
        assert_eq!(
            *g, 2,
            "a lower rank under a higher one: a try cannot deadlock"
        );
    }

    #[test]
    fn lock_forever_and_force_unlock_pair_up() {
        let l = SpinLock::new(rank::HEAPS, 5);
        l.lock_forever();
        assert!(l.locked.load(Ordering::Relaxed));
        unsafe { l.force_unlock() };
        assert_eq!(*l.lock(), 5);
    }
}
