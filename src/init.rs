//! Process and thread set-up, above the pool, the learner and the big blocks: it attaches
//! a heap to each thread and parks it at exit, takes every lock around `fork`, and prints
//! the exit report. Nothing here allocates through `malloc` before the allocator is ready:
//! the steps that run while `STATE` is `RUNNING` are `pthread_key_create` and reading the
//! configuration, neither of which allocates; `pthread_atfork` (which may) runs after
//! `READY`. Nothing runs at load: a process that never allocates pays only for mapping
//! the library.

use crate::{big, config, footprint, learn, pool, stats, tls};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

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
    // This process owns the counters (`stats::note_owner`: a `vfork` child, which shares
    // them, then knows it is not their owner); the fork handlers below keep that true in
    // every fork child. Set here, not at load: a process that never allocates (most of a
    // shell's short commands) runs none of the allocator's code at start-up.
    stats::note_owner();
    stats::keep_stderr_for_report();
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor has the C ABI pthread expects.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        THREAD_KEY.store(key as usize + 1, Ordering::Release);
    }
    if config::get().check {
        pool::free::arm_freed_mark(); // before the first block is carved
    }
    // Idle cached big blocks leave on the pool's refills too, not only on big-block calls;
    // in the footprint mode the refills also watch the resident set's peak.
    if stats::footprint_wanted() {
        footprint::enable();
    }
    pool::alloc::set_on_refill(on_refill);
    // A thread whose first pool call frees another thread's block gets a heap there, so
    // its frees are batched like every thread's (`pool::free`).
    pool::free::set_attach(attach_thread_for_free);
    STATE.store(READY, Ordering::Release);
    register_fork_handlers();
    if config::get().sites {
        stats::note_start();
        catch_crashes();
    }
}

/// What every pool refill runs (`pool::alloc::set_on_refill`).
fn on_refill() {
    big::age_if_due();
    footprint::note_progress();
}

/// The signals that end a process by a fault of its own (`abort` too): in the sites mode
/// their handler writes the report before the process dies. Not `SIGINT` or `SIGTERM`:
/// programs set up their own handlers for those only when they find the default one
/// (Python's `KeyboardInterrupt`), and the profiler must not change what a program does.
const CRASHES: [libc::c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// Installs `on_crash` for each signal of `CRASHES` that still has its default action (a
/// program's own handler is left alone; one it installs later replaces ours).
fn catch_crashes() {
    for sig in CRASHES {
        // SAFETY: all zeroes is a valid `sigaction` (no handler, empty mask, no flags).
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: a null new action only reads the current one into `old`.
        if unsafe { libc::sigaction(sig, core::ptr::null(), &mut old) } != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            continue;
        }
        // SAFETY: as above.
        let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
        act.sa_sigaction = on_crash as extern "C" fn(libc::c_int) as usize;
        // On the alternate stack if the thread has one (a stack overflow leaves no room).
        act.sa_flags = libc::SA_ONSTACK;
        // SAFETY: `act` is initialized; `on_crash` is an `extern "C" fn(c_int)`.
        unsafe { libc::sigaction(sig, &act, core::ptr::null_mut()) };
    }
}

/// A crash in the sites mode: the report so far (no lock waited on: see
/// `stats::report_at_exit`), then the signal again with its default action, so the process
/// ends as it would have (its status, its core dump).
extern "C" fn on_crash(sig: libc::c_int) {
    stats::report_on_signal(sig);
    // SAFETY: resetting a disposition and raising a signal are async-signal-safe; the
    // signal stays blocked until this handler returns, then ends the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Registers the fork handlers, once. `pthread_atfork` may allocate: it runs after `STATE`
/// is `READY`, and the flag is set first, so an allocation inside it does not register
/// twice.
fn register_fork_handlers() {
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    if !REGISTERED.swap(true, Ordering::AcqRel) {
        // SAFETY: the handlers are `extern "C" fn()` with no preconditions.
        let r = unsafe {
            libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
        };
        if r != 0 {
            // Only ENOMEM is possible; say it, since a fork child may then inherit a lock
            // held by a thread it does not have.
            crate::diag::eprint_line(format_args!(
                "hakmem: pthread_atfork failed ({r}): fork is unsafe while other threads allocate"
            ));
        }
    }
}

/// Gives the calling thread a pool heap (on its first pool allocation) and arranges for it
/// to be parked when the thread exits. False when out of memory.
#[cold]
pub(crate) fn attach_thread() -> bool {
    ensure();
    remember(pool::thread::attach(tls::exited()))
}

/// `attach_thread` for a free that wants a heap to batch in (`pool::free::set_attach`):
/// never waits for the heap-list lock (false when it is busy).
fn attach_thread_for_free() -> bool {
    ensure();
    remember(pool::thread::attach_if_free(tls::exited()))
}

/// Arranges for `heap`, just attached to this thread (null: none), to be parked when the
/// thread exits. Whether there is one.
fn remember(heap: *mut pool::heap::Heap) -> bool {
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
/// (another key's destructor) gets a *late* heap (see `pool::thread::attach`).
unsafe extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    // SAFETY: the value is the exiting thread's heap, set by `attach_thread`.
    unsafe { pool::thread::detach(value.cast()) };
    tls::set_exited();
}

// Fork: take every allocator lock, in the one lock order of `lock::rank` (learner locks,
// the madvise batch, the heap list, the registry), so the child never inherits one held
// by a thread that does not exist there; release them in parent and child.
extern "C" fn fork_prepare() {
    learn::lock_for_fork();
    big::madvise::lock_for_fork();
    pool::thread::lock_for_fork();
    big::registry::lock_for_fork();
}

fn unlock_all() {
    // SAFETY: `fork_prepare` took every lock on this thread (or the thread the child copies).
    unsafe {
        big::registry::unlock_after_fork();
        pool::thread::unlock_after_fork();
        big::madvise::unlock_after_fork();
        learn::unlock_after_fork();
    }
}

extern "C" fn fork_parent() {
    unlock_all();
}

extern "C" fn fork_child() {
    unlock_all();
    stats::note_owner();
    if config::get().sites {
        stats::note_start();
    }
    pool::thread::after_fork_in_child();
    // The child has one thread: a busy flag another thread of the parent held stays set
    // forever here (the sampler would skip every sample, the unwinder every stack).
    learn::after_fork_in_child();
    footprint::after_fork_in_child();
    crate::os::after_fork_in_child();
}

/// Runs at exit (from `.fini_array`, so no `atexit` registration, which may allocate).
extern "C" fn at_exit() {
    stats::report_at_exit();
}

#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = at_exit;
