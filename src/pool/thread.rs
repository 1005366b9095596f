//! A heap's thread: attach (a parked heap adopted, or a new one), exit (the heap parked
//! for the next thread), the late heaps of threads that allocate in their last destructor
//! round, fork, and the validation of a thread's heap. The pool does not attach heaps by
//! itself: its allocation returns null on a thread that has none, and the layer above
//! (`init::attach_thread`, through the front) attaches one (`attach`) and parks it at
//! thread exit (`detach`). The list of heaps changes under one lock (`HEAPS`).

use super::collect::collect;
use super::free::flush_outbox;
use super::heap::{current, empty_page, Heap, ALL_HEAPS};
use super::pages::release_empty_pages;
use super::segment::{self, KINDS};
use crate::lock::SpinLock;
use crate::size_class::NBINS;
use crate::{os, tls};
use core::ptr;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

struct Heaps {
    parked: *mut Heap,
    /// Heaps attached after their thread's exit destructor had run. glibc runs destructors
    /// in at most 4 rounds; a thread that allocates in the last one gets a heap that no
    /// destructor parks. Such heaps are parked once their thread is gone (`reclaim`).
    late: *mut Heap,
    /// Attaches since `reclaim` last checked every attached heap, and how many to wait for
    /// before the next check (a thread whose *first* pool allocation came in its last
    /// destructor round has an ordinary-looking heap that no destructor parks either).
    /// Waiting as many attaches as there were attached heaps keeps the checks' syscalls at
    /// one per attach on average.
    attaches: usize,
    scan_after: usize,
    arena: *mut u8,
    arena_left: usize,
}
// SAFETY: the raw pointers are only followed under the lock.
unsafe impl Send for Heaps {}

/// Attaches between two checks of every attached heap, at least.
const SCAN_EVERY: usize = 64;

static HEAPS: SpinLock<Heaps> = SpinLock::new(
    crate::lock::rank::HEAPS,
    Heaps {
        parked: ptr::null_mut(),
        late: ptr::null_mut(),
        attaches: 0,
        scan_after: SCAN_EVERY,
        arena: ptr::null_mut(),
        arena_left: 0,
    },
);

/// Gives the calling thread a heap, a parked one if any, else a new one, and makes it the
/// thread's current heap. `late`: the thread's exit destructor has already run, so no
/// destructor may park this heap (see `Heaps::late`). Null when out of memory.
pub fn attach(late: bool) -> *mut Heap {
    attach_with(late, HEAPS.lock())
}

/// `attach` if the heap-list lock is free at once; null, with nothing done, if not (a free
/// that wants a heap must not wait: see `free::set_attach`).
pub fn attach_if_free(late: bool) -> *mut Heap {
    match HEAPS.try_lock_within(0) {
        Some(g) => attach_with(late, g),
        None => ptr::null_mut(),
    }
}

fn attach_with(late: bool, mut g: crate::lock::Guard<'_, Heaps>) -> *mut Heap {
    let (pid, tid) = (process_id(), this_thread_id());
    g.attaches += 1;
    if g.parked.is_null() {
        reclaim(&mut g, pid);
    }
    // A parked heap if any (its inbox may hold frees other threads made while it was
    // parked: the first refill collects them), else a new one.
    let heap = if g.parked.is_null() {
        new_heap(&mut g)
    } else {
        let h = g.parked;
        // SAFETY: parked heaps are live and on the parked list under the lock.
        g.parked = unsafe { (*h).next_parked };
        h
    };
    if heap.is_null() {
        return heap;
    }
    // SAFETY: the heap is ours; its owner fields and the late list change under the lock.
    unsafe {
        (*heap).owner_pid = pid;
        (*heap).owner_tid = tid;
        if late {
            (*heap).late = true;
            (*heap).next_late = g.late;
            g.late = heap;
        }
    }
    drop(g);
    set_current(heap);
    heap
}

/// Makes `heap` (null: none) this thread's heap, and its fast heap where the configuration
/// lets the C ABI's inline paths use the pool (`config::pool_fast`).
fn set_current(heap: *mut Heap) {
    tls::set_heap(heap as *mut ());
    let fast = if crate::config::pool_fast() {
        heap
    } else {
        ptr::null_mut()
    };
    tls::set_fast_heap(fast as *mut ());
}

fn this_thread_id() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

fn process_id() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

/// Whether the thread `tid` of this process has exited (its id is gone). Keeps `errno`.
fn thread_is_gone(pid: libc::pid_t, tid: libc::pid_t) -> bool {
    // SAFETY: errno is this thread's; tgkill with signal 0 only checks that `tid` exists.
    unsafe {
        let saved = *libc::__errno_location();
        let r = libc::syscall(libc::SYS_tgkill, pid, tid, 0);
        let gone = r != 0 && *libc::__errno_location() == libc::ESRCH;
        *libc::__errno_location() = saved;
        gone
    }
}

/// Parks heaps whose threads have exited without a destructor parking them: the late
/// heaps at once, and every attached heap once `scan_after` attaches have passed. A heap is
/// parked only if it belongs to this process (`pid`) and its thread id is gone: a new
/// thread that reused the id only delays this, never makes it early. Heaps inherited
/// through `fork` from the parent's other threads (another pid) are never reused: their
/// threads may have stopped halfway through an operation.
fn reclaim(g: &mut Heaps, pid: libc::pid_t) {
    let mut link: *mut *mut Heap = &mut g.late;
    // SAFETY: heaps are immortal; their lists and owner fields change only under the lock,
    // which the caller holds.
    unsafe {
        while !(*link).is_null() {
            let h = *link;
            let foreign = (*h).owner_pid != pid;
            if foreign || thread_is_gone(pid, (*h).owner_tid) {
                *link = (*h).next_late;
                (*h).late = false;
                (*h).next_late = ptr::null_mut();
                if !foreign {
                    park(g, h);
                }
            } else {
                link = &raw mut (*h).next_late;
            }
        }
        if !g.parked.is_null() || g.attaches < g.scan_after {
            return;
        }
        let mut attached = 0;
        let mut h = ALL_HEAPS.load(Acquire);
        while !h.is_null() {
            let mine = (*h).owner_tid != 0 && !(*h).late && (*h).owner_pid == pid;
            if mine && thread_is_gone(pid, (*h).owner_tid) {
                park(g, h);
            } else if mine {
                attached += 1;
            }
            h = (*h).next_all;
        }
        g.attaches = 0;
        g.scan_after = attached.max(SCAN_EVERY);
    }
}

/// Puts `h` (attached to no live thread, on no late list) on the parked list.
///
/// # Safety
/// The caller holds the lock.
unsafe fn park(g: &mut Heaps, h: *mut Heap) {
    // SAFETY: per the caller.
    unsafe {
        // A heap whose thread ended without its exit destructor (`reclaim`) still holds the
        // blocks it freed for other heaps: they go now, not when a thread adopts it. (Its
        // thread is gone: nobody else touches its outbox; `detach` has emptied it already.)
        flush_outbox(h);
        (*h).owner_pid = 0;
        (*h).owner_tid = 0;
        (*h).next_parked = g.parked;
    }
    g.parked = h;
}

/// Takes `heap` off the late list, if it is there.
fn unlist_late(g: &mut Heaps, heap: *mut Heap) {
    let mut link: *mut *mut Heap = &mut g.late;
    // SAFETY: as in `reclaim`.
    unsafe {
        while !(*link).is_null() {
            if *link == heap {
                *link = (*heap).next_late;
                (*heap).late = false;
                (*heap).next_late = ptr::null_mut();
                return;
            }
            link = &raw mut (**link).next_late;
        }
    }
}

/// In a child after `fork`: the calling thread's heap now belongs to this process and
/// thread (its ids changed). The parent's other heaps keep the parent's pid: never reused.
pub fn after_fork_in_child() {
    let heap = current();
    if heap.is_null() {
        return;
    }
    let _g = HEAPS.lock();
    // SAFETY: this thread's heap; its owner fields change under the lock.
    unsafe {
        (*heap).owner_pid = process_id();
        (*heap).owner_tid = this_thread_id();
    }
}

/// Where a heap sits inside its 4 KiB-aligned slot. Blocks at the start of a page (and of
/// any 4 KiB boundary) are the commonest hot blocks; a heap at offset 0 would put
/// `pages[0..]` at the same address modulo 4096, and the free path's store to the block's
/// link would then falsely delay its load of `pages[bin]` (4K aliasing).
const HEAP_OFFSET: usize = 1024;
const HEAP_SLOT: usize = os::round_up(HEAP_OFFSET + core::mem::size_of::<Heap>(), 4096);

fn new_heap(g: &mut Heaps) -> *mut Heap {
    if g.arena_left < HEAP_SLOT {
        const ARENA: usize = 256 * 1024;
        let a = os::map(0, ARENA);
        if a.is_null() {
            return ptr::null_mut();
        }
        g.arena = a;
        g.arena_left = ARENA;
    }
    let heap = g.arena.wrapping_add(HEAP_OFFSET) as *mut Heap;
    g.arena = g.arena.wrapping_add(HEAP_SLOT);
    g.arena_left -= HEAP_SLOT;
    // SAFETY: `heap` is fresh, zeroed arena memory, 64-byte aligned, with room for a Heap.
    unsafe { heap.write(Heap::new(ALL_HEAPS.load(Relaxed))) };
    ALL_HEAPS.store(heap, Release);
    heap
}

/// Detaches the exiting thread's heap: sends its outboxes, collects its inbox, gives back
/// what is empty, then parks the heap for the next thread.
///
/// # Safety
/// `heap` must be the calling thread's heap, and the thread must be exiting.
pub unsafe fn detach(heap: *mut Heap) {
    // SAFETY: the heap belongs to this (exiting) thread until parked.
    unsafe {
        // What it freed for other heaps goes to them; what they freed for it comes back,
        // before its empty pages go.
        flush_outbox(heap);
        collect(heap);
        release_empty_pages(&mut *Heap::local(heap));
        set_current(ptr::null_mut());
        let mut g = HEAPS.lock();
        if (*heap).late {
            unlist_late(&mut g, heap);
        }
        park(&mut g, heap);
    }
}

/// Checks the calling thread's heap and panics naming the first broken invariant (a no-op
/// on a thread without a heap). The stress tests call it; debug builds check each page the
/// slow path hands out.
pub fn check_current() {
    let heap = current();
    if !heap.is_null() {
        // SAFETY: this thread's own heap.
        unsafe { check(heap) };
    }
}

/// Every page on the heap's lists is in use, of its list's class, consistent
/// (`Page::check`); each size class's current page is on its queue; every segment with
/// free slots is the heap's, in the segment map, with `used_pages` right; cached empty
/// segments are empty; pages awaiting their purge are out of use, in segments still in use.
///
/// # Safety
/// `heap` must be the calling thread's heap.
unsafe fn check(heap: *mut Heap) {
    // SAFETY: the owner's own state; every page and segment on its lists is live.
    unsafe {
        let h = &*Heap::local(heap);
        for bin in 0..NBINS {
            let mut p = h.queues[bin].first;
            while !p.is_null() {
                assert!(
                    (*p).bin as usize == bin && !(*p).in_full.get(),
                    "page {p:p} on queue {bin}: bin {}, in_full {}",
                    (*p).bin,
                    (*p).in_full.get()
                );
                (*p).check();
                p = (*p).next.get();
            }
            let current = h.pages[bin];
            assert!(
                current == empty_page() || h.queues[bin].contains(current),
                "current page {current:p} of class {bin} is not on its queue"
            );
        }
        let mut p = h.full.first;
        while !p.is_null() {
            assert!(
                (*p).in_full.get(),
                "page {p:p} on the full list is not marked full"
            );
            (*p).check();
            p = (*p).next.get();
        }
        for k in 0..KINDS {
            let mut p = h.retired[k].first;
            while !p.is_null() {
                let seg = segment::segment_of(p as *const u8);
                assert!(
                    !(*p).in_use.get()
                        && (*p).purge_pending.get()
                        && (*seg).used_pages != 0
                        && (*seg).kind as usize == k
                        && (*seg).in_free_list,
                    "page {p:p} awaiting its purge: in use {}, pending {}, segment's pages in use {}, kind {:?}",
                    (*p).in_use.get(),
                    (*p).purge_pending.get(),
                    (*seg).used_pages,
                    (*seg).kind
                );
                p = (*p).next.get();
            }
        }
        for k in 0..KINDS {
            let mut seg = h.segments[k].first;
            while !seg.is_null() {
                segment::check(seg, heap as *mut ());
                assert!(
                    (*seg).in_free_list && !segment::is_full(seg),
                    "segment {seg:p}"
                );
                seg = (*seg).next;
            }
            let mut seg = h.empty[k].first;
            while !seg.is_null() {
                segment::check(seg, heap as *mut ());
                assert_eq!((*seg).used_pages, 0, "cached empty segment {seg:p} in use");
                seg = (*seg).next;
            }
        }
    }
}

/// Fork: hold the heap list lock across `fork` so the child never sees it half-updated.
pub fn lock_for_fork() {
    HEAPS.lock_forever();
}

/// After fork, in parent and child.
///
/// # Safety
/// Only after `lock_for_fork` on this thread.
pub unsafe fn unlock_after_fork() {
    // SAFETY: forwarded.
    unsafe { HEAPS.force_unlock() };
}
