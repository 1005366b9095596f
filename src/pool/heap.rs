//! The thread-local heap: what it holds and who may touch which part. One heap per thread,
//! owning segments and pages; the allocation paths (`alloc`), the frees (`free`), the
//! collection of other threads' frees (`collect`) and the thread's attach and exit
//! (`thread`) work on it.
//!
//! Heaps are immortal: when a thread exits its heap gives back every empty page and is
//! *parked*; the next new thread adopts it, pages, frees in transit and all. So a
//! segment's `owner` pointer never dangles, and thread churn does not grow memory.
//!
//! Sharing: the owner's state sits in `local` (`Heap::local`), touched only by the owning
//! thread. Other threads write only the `inbox` (a batch of blocks they freed, pushed with
//! one compare-and-swap per batch), in a cache line of its own; the counters are written by
//! the owner and read by anyone for the stats; list links change under the heap-list lock
//! (`thread`). So the owner's `&mut Local` never covers a byte another thread reads or
//! writes (a `&mut Heap` would, which Rust's aliasing rules forbid).

use super::list::List;
use super::page::{Block, Page, PageQueue};
use super::segment::{Segment, KINDS};
use crate::size_class::NBINS;
use crate::tls;
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::Relaxed};

/// A counter written by one thread (plain load + store, no atomic read-modify-write, so
/// the fast path stays lock-free and cheap) and read by anyone for the stats.
#[derive(Default)]
pub struct OwnerCounter(AtomicU64);

impl OwnerCounter {
    #[inline(always)]
    pub fn bump(&self) {
        self.add(1);
    }
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed) + n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// The heap's counters, each written by the owning thread only.
#[derive(Default)]
pub struct HeapStats {
    pub allocs: OwnerCounter,
    /// Frees of this heap's own blocks by this thread.
    pub frees: OwnerCounter,
    /// Frees this thread made of blocks owned by another heap (buffered in its outbox).
    pub remote_frees: OwnerCounter,
    /// Batches of those posted to their owners' inboxes: one compare-and-swap each.
    pub remote_batches: OwnerCounter,
    /// Compare-and-swaps on an inbox that another poster won first (retried).
    pub remote_cas_retries: OwnerCounter,
    /// Collections: this heap's inbox taken and its blocks freed here.
    pub collections: OwnerCounter,
    /// Blocks those collections freed, and the page runs they touched (consecutive blocks
    /// of one page count once): the work per collection.
    pub collected_blocks: OwnerCounter,
    pub collected_pages: OwnerCounter,
}

/// Outbox entries per heap: the other heaps a thread sends freed blocks to at once
/// (direct-mapped by heap address; a collision sends the older batch).
pub const OUTBOX: usize = 16;

/// Blocks of other heaps this thread freed and has not sent yet, for one destination: a
/// chain through the blocks' encoded links (`Block`), newest first.
#[derive(Clone, Copy)]
pub struct Outbox {
    pub dest: *mut Heap,
    pub first: *mut Block,
    pub last: *mut Block,
    pub count: u32,
    /// The batch's weight: each block adds its page kind's (see `free::BATCH_WEIGHT`); the
    /// batch is sent when it reaches `free::BATCH_FULL`.
    pub weight: u32,
    /// The last `SKIP` blocks pushed, by `count % SKIP`: each block's second word gets the
    /// one pushed `SKIP` before it, the block its collector reaches `SKIP` steps later, so
    /// the collector can prefetch ahead of its walk (`collect`).
    pub recent: [*mut Block; SKIP],
}

/// How far ahead of its walk a collection prefetches (see `Outbox::recent`).
pub const SKIP: usize = 4;

impl Outbox {
    pub const EMPTY: Outbox = Outbox {
        dest: ptr::null_mut(),
        first: ptr::null_mut(),
        last: ptr::null_mut(),
        count: 0,
        weight: 0,
        recent: [ptr::null_mut(); SKIP],
    };
}

/// The other threads' side of a heap: freed blocks posted in batches, a lock-free stack of
/// chains (each chain's last block links to the previous head). Alone in its cache line:
/// every poster writes it, the owner swaps it empty.
#[repr(C, align(64))]
pub struct Inbox {
    pub head: AtomicPtr<Block>,
}

/// A thread's heap. See the module doc for who touches what.
#[repr(C)]
pub struct Heap {
    local: UnsafeCell<Local>,
    pub inbox: Inbox,
    pub stats: HeapStats,
    /// The next heap on `ALL_HEAPS`: set once, before the heap is published there.
    pub(super) next_all: *mut Heap,
    // The rest changes under the heap-list lock only (`thread`).
    pub(super) next_parked: *mut Heap,
    /// The process and thread the heap is attached to (0, 0: parked, or never attached).
    pub(super) owner_pid: libc::pid_t,
    pub(super) owner_tid: libc::pid_t,
    /// On the list of late heaps (attached after the thread's exit destructor had run).
    pub(super) late: bool,
    pub(super) next_late: *mut Heap,
}

/// The owner-only part of a heap.
#[repr(C)]
pub struct Local {
    /// The page each size class allocates from (`EMPTY_PAGE` when none): the fast path.
    pub pages: [*mut Page; NBINS],
    /// Every non-full page of each size class, the current one included.
    pub queues: [PageQueue; NBINS],
    /// Pages with no free block left.
    pub full: PageQueue,
    /// Per page kind: segments with at least one free page slot.
    pub segments: [List<Segment>; KINDS],
    /// Per page kind: recently emptied segments, kept so a program that frees and then
    /// allocates again reuses them without map, unmap or page faults (mimalloc's delayed
    /// purge); older than `PURGE_NS` or beyond `MAX_EMPTY`, they are unmapped (`pages`).
    pub empty: [List<Segment>; KINDS],
    /// Per page kind: pages given back to segments that are still in use, newest first,
    /// whose memory is still resident: the first taken for a new page, and purged once they
    /// have waited `pages::PAGE_PURGE_NS` (mimalloc's purge delay, per page).
    pub retired: [PageQueue; KINDS],
    /// Blocks of other heaps freed here, waiting to be sent (`free`).
    pub outbox: [Outbox; OUTBOX],
    /// Outbox entries holding blocks (so the slow path's flush costs one test when none).
    pub outbox_used: u32,
    /// Some size class may keep a spare empty page beside its current one
    /// (`pages::keep_as_spare`): only then are the queues walked for spares that stayed
    /// empty too long.
    pub spares: bool,
    /// When the next thing waiting here is due to go (a spare page, a retired page's
    /// memory, a cached empty segment; `u64::MAX`: nothing waits): `pages::purge_idle`
    /// reads the clock only when something waits, and works only when it is due.
    pub purge_due_ns: u64,
    /// Refills since the last look at what waits (`alloc::alloc_slow`).
    pub refills_since_idle_check: u32,
}

impl Heap {
    /// The owner-only part of `heap`.
    ///
    /// # Safety
    /// `heap` must be live; only its owning thread may use the result.
    #[inline(always)]
    pub unsafe fn local(heap: *mut Heap) -> *mut Local {
        // SAFETY: a raw projection to the cell and its contents: no reference is made.
        UnsafeCell::raw_get(unsafe { &raw const (*heap).local })
    }

    /// A fresh heap, attached to nobody, to be written into its slot (`thread::new_heap`).
    pub(super) fn new(next_all: *mut Heap) -> Heap {
        Heap {
            local: UnsafeCell::new(Local {
                pages: [empty_page(); NBINS],
                queues: [PageQueue::EMPTY; NBINS],
                full: PageQueue::EMPTY,
                segments: [List::EMPTY; KINDS],
                empty: [List::EMPTY; KINDS],
                retired: [List::EMPTY; KINDS],
                outbox: [Outbox::EMPTY; OUTBOX],
                outbox_used: 0,
                spares: false,
                purge_due_ns: u64::MAX,
                refills_since_idle_check: 0,
            }),
            inbox: Inbox {
                head: AtomicPtr::new(ptr::null_mut()),
            },
            stats: HeapStats::default(),
            next_all,
            next_parked: ptr::null_mut(),
            owner_pid: 0,
            owner_tid: 0,
            late: false,
            next_late: ptr::null_mut(),
        }
    }
}

/// The page every empty slot of `Heap::pages` points to: its free list is always empty,
/// so the fast path needs no null check on the page.
struct EmptyPage(UnsafeCell<Page>);
// SAFETY: nobody ever writes to the empty page: the fast path only writes to a page whose
// free list is non-empty, and the slow path recognises and skips it.
unsafe impl Sync for EmptyPage {}
static EMPTY_PAGE: EmptyPage = EmptyPage(UnsafeCell::new(Page::EMPTY));

#[inline(always)]
pub fn empty_page() -> *mut Page {
    EMPTY_PAGE.0.get()
}

/// This thread's heap (null before its first pool allocation, or after it exited).
#[inline(always)]
pub fn current() -> *mut Heap {
    tls::heap() as *mut Heap
}

/// This thread's heap where the C ABI's inline paths may use it (see `thread`); null
/// otherwise, which sends them to the full path.
#[inline(always)]
pub fn fast() -> *mut Heap {
    tls::fast_heap() as *mut Heap
}

/// Every heap ever made, newest first: a list that only grows (heaps are immortal), pushed
/// under the heap-list lock (`thread`) and read without it (the stats, the exit report: a
/// report written from `_exit` in a signal handler must not wait for a lock the interrupted
/// thread may hold).
pub(super) static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(ptr::null_mut());

/// Frees of other heaps' blocks by a thread that could get no heap of its own (out of
/// memory): each posted alone, and counted here, the one shared counter (never on a path
/// a thread with a heap takes).
pub(super) static REMOTE_FREES_WITHOUT_HEAP: AtomicU64 = AtomicU64::new(0);

/// Pool counters summed over every heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolTotals {
    pub allocs: u64,
    pub frees: u64,
    pub remote_frees: u64,
    pub remote_batches: u64,
    pub remote_cas_retries: u64,
    pub collections: u64,
    pub collected_blocks: u64,
    pub collected_pages: u64,
    pub heaps: u64,
}

/// Takes no lock (see `ALL_HEAPS`).
/// Every heap there is (attached or parked), with its size: heaps are immortal.
pub fn for_each_heap(mut f: impl FnMut(*const u8, usize)) {
    let mut h = ALL_HEAPS.load(Acquire);
    while !h.is_null() {
        f(h as *const u8, core::mem::size_of::<Heap>());
        // SAFETY: heaps on the list are immortal; `next_all` is written before publication.
        h = unsafe { (*h).next_all };
    }
}

pub fn totals() -> PoolTotals {
    let mut t = PoolTotals {
        remote_frees: REMOTE_FREES_WITHOUT_HEAP.load(Relaxed),
        ..Default::default()
    };
    let mut h = ALL_HEAPS.load(Acquire);
    while !h.is_null() {
        // SAFETY: heaps on `all` are immortal; their counters are atomics.
        unsafe {
            let s = &(*h).stats;
            t.allocs += s.allocs.get();
            t.frees += s.frees.get();
            t.remote_frees += s.remote_frees.get();
            t.remote_batches += s.remote_batches.get();
            t.remote_cas_retries += s.remote_cas_retries.get();
            t.collections += s.collections.get();
            t.collected_blocks += s.collected_blocks.get();
            t.collected_pages += s.collected_pages.get();
            t.heaps += 1;
            h = (*h).next_all;
        }
    }
    t
}
