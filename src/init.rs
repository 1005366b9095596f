//! Process and thread set-up, above the pool, the learner and the big blocks: it attaches
//! a heap to each thread and parks it at exit, takes every lock around `fork`, and prints
//! the exit report. Nothing here allocates through `malloc` before the allocator is ready:
//! the steps that run while `STATE` is `RUNNING` are `pthread_key_create` and reading the
//! configuration, neither of which allocates; `pthread_atfork` (which may) runs after
//! `READY`.

use crate::{big, config, learn, pool, stats, tls};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The thread-exit key (+1; 0: none could be made).
static THREAD_KEY: AtomicUsize = AtomicUsize::new(0);

/// Runs the one-time process set-up if it has not run yet.
#[inline]
pub(crate) fn ensure() {
    if STATE.load(Ordering::Acquire) != READY {
        init_slow();
    }
}

#[cold]
fn init_slow() {
    if STATE
        .compare_exchange(UNINIT, RUNNING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        while STATE.load(Ordering::Acquire) != READY {
            // SAFETY: no preconditions.
            unsafe { libc::sched_yield() };
        }
        return;
    }
    stats::keep_stderr_for_report();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor has the C ABI pthread expects.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        THREAD_KEY.store(key as usize + 1, Ordering::Release);
    }
    config::get();
    // Idle cached big blocks leave on the pool's refills too, not only on big-block calls.
    pool::heap::set_on_refill(big::age_if_due);
    STATE.store(READY, Ordering::Release);
    // SAFETY: the handlers are `extern "C" fn()` with no preconditions.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
}

/// Gives the calling thread a pool heap (on its first pool allocation) and arranges for it
/// to be parked when the thread exits. False when out of memory.
#[cold]
pub(crate) fn attach_thread() -> bool {
    ensure();
    let heap = pool::heap::attach(tls::exited());
    if heap.is_null() {
        return false;
    }
    let k = THREAD_KEY.load(Ordering::Acquire);
    if k != 0 {
        // SAFETY: the key was created by `pthread_key_create`; for low key numbers glibc
        // stores the value in the thread descriptor without allocating.
        unsafe { libc::pthread_setspecific((k - 1) as libc::pthread_key_t, heap.cast()) };
    }
    true
}

/// The thread-exit destructor: the heap is parked, and a later allocation of this thread
/// (another key's destructor) gets a *late* heap (see `pool::heap::attach`).
unsafe extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    // SAFETY: the value is the exiting thread's heap, set by `attach_thread`.
    unsafe { pool::heap::detach(value.cast()) };
    tls::set_exited();
}

// Fork: take every allocator lock, in the one lock order of `lock::rank` (learner locks,
// the madvise batch, the heap list, the registry), so the child never inherits one held
// by a thread that does not exist there; release them in parent and child.
extern "C" fn fork_prepare() {
    learn::lock_for_fork();
    big::madvise::lock_for_fork();
    pool::heap::lock_for_fork();
    big::registry::lock_for_fork();
}

fn unlock_all() {
    // SAFETY: `fork_prepare` took every lock on this thread (or the thread the child copies).
    unsafe {
        big::registry::unlock_after_fork();
        pool::heap::unlock_after_fork();
        big::madvise::unlock_after_fork();
        learn::unlock_after_fork();
    }
}

extern "C" fn fork_parent() {
    unlock_all();
}

extern "C" fn fork_child() {
    unlock_all();
    pool::heap::after_fork_in_child();
}

/// Runs at exit (from `.fini_array`, so no `atexit` registration, which may allocate).
extern "C" fn at_exit() {
    stats::report_at_exit();
}

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
