//! Process start-up, thread registration, fork and exit hooks. Nothing here allocates
//! through `malloc` before the allocator is ready: the steps that run while `STATE` is
//! `RUNNING` are `pthread_key_create` and reading the configuration, neither of which
//! allocates; `pthread_atfork` (which may) runs after `READY`.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static THREAD_KEY: AtomicUsize = AtomicUsize::new(0);

/// Runs the one-time set-up if it has not run yet.
#[inline]
pub fn ensure() {
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
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor has the C ABI pthread expects.
    if unsafe { libc::pthread_key_create(&mut key, Some(crate::pool::heap::on_thread_exit)) } == 0 {
        THREAD_KEY.store(key as usize + 1, Ordering::Release);
    }
    crate::config::get();
    STATE.store(READY, Ordering::Release);
    // SAFETY: the handlers are `extern "C" fn()` with no preconditions.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
}

/// Arranges for `on_thread_exit(heap)` to run when the calling thread exits.
pub fn register_thread_heap(heap: *mut libc::c_void) {
    let k = THREAD_KEY.load(Ordering::Acquire);
    if k != 0 {
        // SAFETY: the key was created by `pthread_key_create`; for low key numbers glibc
        // stores the value in the thread descriptor without allocating.
        unsafe { libc::pthread_setspecific((k - 1) as libc::pthread_key_t, heap) };
    }
}

// Fork: take every allocator lock, in the one lock order of `lock::rank` (learner locks,
// the madvise batch, the heap list, the registry), so the child never inherits one held
// by a thread that does not exist there; release them in parent and child.
extern "C" fn fork_prepare() {
    crate::learn::lock_for_fork();
    crate::big::madvise::lock_for_fork();
    crate::pool::heap::lock_for_fork();
    crate::registry::lock_for_fork();
}

fn unlock_all() {
    // SAFETY: `fork_prepare` took every lock on this thread (or the thread the child copies).
    unsafe {
        crate::registry::unlock_after_fork();
        crate::pool::heap::unlock_after_fork();
        crate::big::madvise::unlock_after_fork();
        crate::learn::unlock_after_fork();
    }
}

extern "C" fn fork_parent() {
    unlock_all();
}

extern "C" fn fork_child() {
    unlock_all();
}

/// Runs at exit (from `.fini_array`, so no `atexit` registration, which may allocate).
extern "C" fn at_exit() {
    crate::stats::report_at_exit();
}

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
