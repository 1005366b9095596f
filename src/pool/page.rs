//! A page: blocks of one size class carved from 64 KiB (small), 512 KiB (medium) or 1 MiB
//! (large) of a segment, with one intrusive LIFO free list, touched only by the owning
//! thread (blocks other threads free come back through the heap's inbox, `collect`), its
//! links encoded and checked (`Block`).

use super::list::{List, Node};
use crate::track;
use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A free block: its first word links to the next free block, encoded.
///
/// The link is stored as `next ^ address of the block` (glibc's safe-linking stores
/// `next ^ (address >> 12)`): a pointer written into a freed block by a use-after-free
/// decodes to an address the writer did not choose unless it knows where the block lies
/// (segments are placed at a random base, `os::map_aligned`). A block and the next one on
/// its page lie in the same page, within `LINK_WINDOW` bytes of the same aligned region,
/// so a valid encoded link is below `LINK_WINDOW`, except the end of a list (null next:
/// the block's own address): `pop` refuses anything else, and aborts naming the page and
/// the block (`corrupt_link`). That refuses a forged absolute address (the attack of a
/// use-after-free write) and overflow bytes written over a free block's link; a forged
/// link to another block of the same region passes, and `HAKMEM_CHECK=1` checks every
/// popped link exactly (a block start of the same page: `heap::check_popped`).
#[repr(C)]
pub struct Block {
    link: usize,
}

/// Encoded links of valid next blocks are below this: the largest page (1 MiB), whose
/// aligned region holds every block of every page kind together with its successor.
pub const LINK_WINDOW: usize = 1 << 20;

impl Block {
    /// The encoded link of free block `b` (see `Block`). (Under the `valgrind` feature,
    /// memcheck sees the word as accessible only while it is read: free memory is
    /// no-access.)
    ///
    /// # Safety
    /// `b` must be a free block of the caller's page.
    #[inline(always)]
    pub unsafe fn link_of(b: *mut Block) -> usize {
        track::defined(b as *const u8, LINK);
        // SAFETY: per the caller, `b`'s first word is its link.
        let link = unsafe { (*b).link };
        track::no_access(b as *const u8, LINK);
        link
    }

    /// The next block after free block `b`, decoded without a check (walks that check
    /// what they find themselves: `Page::check`, the checked mode).
    ///
    /// # Safety
    /// As `link_of`.
    #[inline(always)]
    pub unsafe fn next_of(b: *mut Block) -> *mut Block {
        // SAFETY: forwarded.
        (unsafe { Block::link_of(b) } ^ b as usize) as *mut Block
    }

    /// The next block after free block `b` of `page`, decoded; aborts on a link no valid
    /// next block has (see `Block`).
    ///
    /// # Safety
    /// As `link_of`.
    #[inline(always)]
    pub unsafe fn next_checked(b: *mut Block, page: &Page) -> *mut Block {
        // SAFETY: forwarded.
        let link = unsafe { Block::link_of(b) };
        if link >= LINK_WINDOW {
            // The end of the list (the block's own address), or a corrupt link: out of the
            // way of the common case, no call unless it aborts.
            core::hint::cold_path();
            if link != b as usize {
                corrupt_link(page, b, link);
            }
        }
        (link ^ b as usize) as *mut Block
    }

    /// Sets the link of `b`, a block the caller holds (free, or being freed), to `next`.
    ///
    /// # Safety
    /// `b` must be a block of the caller's page that nobody else uses.
    #[inline(always)]
    pub unsafe fn set_next(b: *mut Block, next: *mut Block) {
        track::undefined(b as *const u8, LINK);
        // SAFETY: per the caller.
        unsafe { (*b).link = next as usize ^ b as usize };
        track::no_access(b as *const u8, LINK);
    }
}

/// A free block's link that no valid list holds: written over after the block was freed
/// (a use-after-free, an overflow from the block before). Going on would hand out memory
/// the writer chose.
#[cold]
#[inline(never)]
pub fn corrupt_link(page: *const Page, block: *mut Block, link: usize) -> ! {
    crate::diag::eprint_line(format_args!(
        "hakmem: malloc(): corrupted free list in page {page:p}: the link in free block {block:p} was overwritten ({:#x} decodes to {:#x}, not a block of the page)",
        link,
        link ^ block as usize
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// The checked mode's finding (`heap::check_popped`): the next block a pop left at the head
/// of `page`'s list, `next`, is not a block start of the page.
#[cold]
#[inline(never)]
pub fn corrupt_next(page: *const Page, next: *mut Block) -> ! {
    crate::diag::eprint_line(format_args!(
        "hakmem: malloc(): corrupted free list in page {page:p}: the link of the block just handed out leads to {next:p}, not a block of the page"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

const LINK: usize = core::mem::size_of::<Block>();

/// The checked mode's freed mark (0: off; see `heap::arm_freed_mark`): carved blocks get it
/// in their second word, as freed ones do.
pub static FREED_MARK: AtomicUsize = AtomicUsize::new(0);

/// A page record. Other threads may read it (the checked mode reads `block_size`, `start`),
/// so nobody ever holds a `&mut Page`: the owner's fields are `Cell`s that it changes
/// through `&Page`, and the fields set by `init` change only while the page is out of use.
/// (A `&mut` held by the owner while another thread reads any byte of the record would be
/// undefined behaviour under Rust's aliasing rules.)
#[repr(C)]
pub struct Page {
    /// Owner-only free list: the fast paths pop and push here.
    pub free: Cell<*mut Block>,
    /// Blocks handed out and not yet returned to `free` (a block another thread freed counts
    /// until its owner collects it). A page record out of use holds `UNUSED_SENTINEL`, so a stray free into
    /// it takes the slow path, which aborts (see `heap::free`).
    pub used: Cell<u32>,
    /// Owner-only: the page is on the heap's full list.
    pub in_full: Cell<bool>,
    /// The page is carved out for a size class (false: a free slot of its segment).
    pub in_use: Cell<bool>,
    /// The size class (set by `init`).
    pub bin: u8,
    /// Owner-only: the record is out of use and on its heap's list of pages whose memory
    /// waits to be purged (`pages::release_page`).
    pub purge_pending: Cell<bool>,
    /// Blocks carved so far (carving is lazy, a few KiB at a time, to keep RSS honest).
    pub capacity: Cell<u32>,
    /// Blocks that fit in the page (set by `init`).
    pub reserved: u32,
    /// Set by `init`.
    pub block_size: usize,
    /// Owner-only: when the page emptied (the clock of `os::now_coarse_ns`): set when it
    /// went back to its segment, for the delayed purge of its memory, or when it became
    /// its class's spare, for the spare's release.
    pub retired_at_ns: Cell<u64>,
    /// Links in the heap's queue for `bin`, or in its full list (owner-only).
    pub next: Cell<*mut Page>,
    pub prev: Cell<*mut Page>,
    /// First byte of the page's block area (set by `init`).
    pub start: *mut u8,
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);

/// `used` of a page record that is out of use: a free into such a page brings it to 0,
/// which sends `heap::free` to its slow path, where the record is found not in use.
pub const UNUSED_SENTINEL: u32 = 1;

impl Page {
    // EMPTY and UNUSED are only ever initializers (each use is a fresh record).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const EMPTY: Page = Page {
        free: Cell::new(ptr::null_mut()),
        used: Cell::new(0),
        in_full: Cell::new(false),
        in_use: Cell::new(false),
        bin: 0,
        purge_pending: Cell::new(false),
        capacity: Cell::new(0),
        reserved: 0,
        block_size: 0,
        retired_at_ns: Cell::new(0),
        next: Cell::new(ptr::null_mut()),
        prev: Cell::new(ptr::null_mut()),
        start: ptr::null_mut(),
    };

    /// A record out of use (a free page slot of a segment).
    #[allow(clippy::declare_interior_mutable_const)]
    pub const UNUSED: Page = Page {
        used: Cell::new(UNUSED_SENTINEL),
        ..Page::EMPTY
    };

    /// Pops a block off the owner's free list; null when it is empty. Aborts on a corrupt
    /// link (see `Block`). The allocation fast path is this plus the TLS read and the bin
    /// lookup.
    ///
    /// # Safety
    /// Owner only; every block on `free` is a free block of this page.
    #[inline(always)]
    pub unsafe fn pop(&self) -> *mut Block {
        let block = self.free.get();
        if block.is_null() {
            return block;
        }
        // One load of the link, one compare, the decoding, two stores. No lock, no atomic
        // read-modify-write, no call.
        // SAFETY: a free block's first word is its link.
        self.free.set(unsafe { Block::next_checked(block, self) });
        self.used.set(self.used.get().wrapping_add(1));
        block
    }

    /// Pushes a freed block onto the owner's free list (the local free fast path).
    ///
    /// # Safety
    /// Owner only; `block` is a block of this page that the caller gives up.
    #[inline(always)]
    pub unsafe fn push(&self, block: *mut Block) {
        // SAFETY: forwarded.
        unsafe { self.push_onto(block, self.free.get()) }
    }

    /// `push` when the caller has already read `top`, the list's head (the free path reads
    /// it once, for its double-free test and for the link).
    ///
    /// # Safety
    /// As `push`; `top == self.free.get()`.
    #[inline(always)]
    pub unsafe fn push_onto(&self, block: *mut Block, top: *mut Block) {
        // SAFETY: the caller gave us the block; its first word becomes the link.
        unsafe { Block::set_next(block, top) };
        self.free.set(block);
        self.used.set(self.used.get().wrapping_sub(1));
    }

    /// Sets the record up for `bin` blocks of `block_size` over `len` bytes at `start`.
    ///
    /// # Safety
    /// `page` must be a record out of use, owned by the caller; no other thread may look
    /// at it meanwhile (nobody frees into a page out of use, except by a bug that the free
    /// path aborts on).
    pub unsafe fn init(page: *mut Page, bin: usize, block_size: usize, start: *mut u8, len: usize) {
        // SAFETY: per the caller, a plain write of the whole record (no reference made).
        unsafe {
            page.write(Page {
                in_use: Cell::new(true),
                bin: bin as u8,
                block_size,
                reserved: (len / block_size) as u32,
                start,
                ..Page::EMPTY
            })
        };
    }

    /// Marks the record out of use (its page went back to the segment).
    pub fn retire(&self) {
        self.in_use.set(false);
        self.used.set(UNUSED_SENTINEL);
    }

    /// Whether `p` is the start of a block carved from this page. Owner only (`capacity`
    /// changes as the owner carves).
    pub fn is_block_start(&self, p: *const u8) -> bool {
        self.is_start_below(p, self.capacity.get())
    }

    /// Whether `p` is the start of one of the page's block slots, carved or not: what any
    /// thread may ask of a page in use (`reserved` is set once, by `init`).
    pub fn is_block_slot(&self, p: *const u8) -> bool {
        self.is_start_below(p, self.reserved)
    }

    fn is_start_below(&self, p: *const u8, blocks: u32) -> bool {
        let off = (p as usize).wrapping_sub(self.start as usize);
        self.block_size != 0
            && off < blocks as usize * self.block_size
            && off.is_multiple_of(self.block_size)
    }

    /// Checks the record's invariants and panics naming the first one broken (debug builds
    /// and the stress tests run it): in use, `used <= capacity <= reserved`, and the
    /// owner's free list holds exactly `capacity - used` distinct block starts of this page
    /// (blocks other threads freed count as used until collected).
    ///
    /// # Safety
    /// Owner only.
    pub unsafe fn check(&self) {
        assert!(self.in_use.get(), "page {:p}: not in use", self);
        let (used, capacity) = (self.used.get(), self.capacity.get());
        assert!(
            used <= capacity && capacity <= self.reserved,
            "page {:p}: used {used}, capacity {capacity}, reserved {}",
            self,
            self.reserved
        );
        let mut free = 0u32;
        let mut b = self.free.get();
        while !b.is_null() {
            assert!(
                self.is_block_start(b as *const u8),
                "page {:p}: free-list entry {b:p} is not a block start",
                self
            );
            free += 1;
            assert!(
                free <= capacity,
                "page {:p}: free list longer than capacity (a cycle?)",
                self
            );
            // SAFETY: a free block of this page (checked just above).
            b = unsafe { Block::next_of(b) };
        }
        assert_eq!(
            free + used,
            capacity,
            "page {:p}: {free} free + {used} used != {capacity} carved",
            self
        );
    }

    /// Whether block `b` is on the owner's free list (a walk: for the checked mode).
    ///
    /// # Safety
    /// Owner only.
    pub unsafe fn holds_free(&self, b: *mut Block) -> bool {
        let mut q = self.free.get();
        while !q.is_null() {
            if q == b {
                return true;
            }
            // SAFETY: every block on the list is a free block of this page.
            q = unsafe { Block::next_of(q) };
        }
        false
    }

    /// Carves not-yet-used blocks onto `free` (which must be empty): 16 KiB of them, but
    /// only 4 KiB the first time for blocks up to 1 KiB (mimalloc's `MI_MAX_EXTEND_SIZE`).
    /// Writing the links makes those pages resident, so a thread that makes two small
    /// blocks of two classes holds 8 KiB of them, not 32; a page that keeps being used
    /// grows by 16 KiB at a time, so a batch of blocks takes this slow path as rarely as
    /// before. Returns whether any were added.
    ///
    /// # Safety
    /// The page must be in use and owned by the calling thread.
    pub unsafe fn extend(&self) -> bool {
        let capacity = self.capacity.get();
        let first_small = capacity == 0 && self.block_size <= 1024;
        let extend_bytes = if first_small { 4 << 10 } else { 16 << 10 };
        // SAFETY: forwarded.
        unsafe { self.extend_by(extend_bytes / self.block_size) }
    }

    /// Carves `blocks` more blocks (at least one, at most what is left) onto the free
    /// list; `extend`'s work, and what a page whose memory is known to be resident uses to
    /// carve it whole at once (`pages::init_page`). Returns whether any were added.
    ///
    /// # Safety
    /// As `extend`.
    pub unsafe fn extend_by(&self, blocks: usize) -> bool {
        let capacity = self.capacity.get();
        let left = (self.reserved - capacity) as usize;
        if left == 0 {
            return false;
        }
        let n = blocks.clamp(1, left);
        let bs = self.block_size;
        // SAFETY: blocks capacity .. capacity + n lie inside the page's block area
        // (capacity + n <= reserved), which is mapped and owned by this thread.
        unsafe {
            let first = self.start.add(capacity as usize * bs);
            for i in 0..n - 1 {
                let b = first.add(i * bs) as *mut Block;
                Block::set_next(b, first.add((i + 1) * bs) as *mut Block);
            }
            let last = first.add((n - 1) * bs) as *mut Block;
            Block::set_next(last, self.free.get());
            let mark = FREED_MARK.load(Ordering::Relaxed);
            if mark != 0 {
                for i in 0..n {
                    // Blocks are at least 16 bytes: the second word is the block's.
                    first.add(i * bs).cast::<usize>().add(1).write(mark);
                }
            }
            track::no_access(first, n * bs); // carved blocks are free memory
            self.free.set(first as *mut Block);
        }
        self.capacity.set(capacity + n as u32);
        true
    }
}

/// A size class's queue of pages, or the heap's full list.
pub type PageQueue = List<Page>;

// SAFETY: the accessors read and write the record's own `next`/`prev` cells.
unsafe impl Node for Page {
    unsafe fn next(n: *mut Page) -> *mut Page {
        // SAFETY: a live record (the caller's guarantee).
        unsafe { (*n).next.get() }
    }
    unsafe fn prev(n: *mut Page) -> *mut Page {
        // SAFETY: as above.
        unsafe { (*n).prev.get() }
    }
    unsafe fn set_next(n: *mut Page, v: *mut Page) {
        // SAFETY: as above.
        unsafe { (*n).next.set(v) }
    }
    unsafe fn set_prev(n: *mut Page, v: *mut Page) {
        // SAFETY: as above.
        unsafe { (*n).prev.set(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page of `n` blocks of `bs` bytes over a buffer of its own.
    /// A block area aligned as a real page is (64 KiB), so a block and its successor lie
    /// in the same `LINK_WINDOW` region as in a segment.
    #[repr(C, align(65536))]
    struct Area([u128; 320]);

    fn area() -> Box<Area> {
        Box::new(Area([0; 320]))
    }

    fn page_over(buf: &mut [u128], bs: usize) -> Box<Page> {
        let mut page = Box::new(Page::UNUSED);
        let len = buf.len() * 16;
        // SAFETY: our own record, seen by no other thread.
        unsafe { Page::init(&mut *page, 2, bs, buf.as_mut_ptr() as *mut u8, len) };
        page
    }

    #[test]
    fn carve_pop_push_and_count() {
        let mut area = area();
        let buf = &mut area.0[..64]; // 1 KiB: 16 blocks of 64 B
        let page = page_over(buf, 64);
        assert!(page.in_use.get() && page.used.get() == 0 && page.reserved == 16);
        unsafe {
            assert!(page.extend());
            assert!(!page.extend(), "16 blocks fit in one extension");
            let mut got = Vec::new();
            loop {
                let b = page.pop();
                if b.is_null() {
                    break;
                }
                assert!(page.is_block_start(b as *const u8));
                got.push(b);
            }
            assert_eq!((got.len(), page.used.get()), (16, 16));
            got.sort();
            got.dedup();
            assert_eq!(got.len(), 16, "every block handed out once");
            for &b in &got {
                page.push(b);
            }
            assert_eq!(page.used.get(), 0);
            assert!(page.holds_free(got[3]));
            let interior = (got[3] as *mut u8).add(16);
            assert!(!page.is_block_start(interior));
            assert!(!page.is_block_start(buf.as_ptr().add(buf.len()) as *const u8));
            // LIFO: the last block pushed comes back first.
            assert_eq!(page.pop(), got[15]);
            assert!(!page.holds_free(got[15]));
            // Links are stored encoded: a freed block's first word is not a pointer; the
            // last block's link is its own address (a null next).
            for _ in 0..15 {
                assert!(!page.pop().is_null());
            }
            assert!(page.pop().is_null() && page.used.get() == 16);
            page.push(got[1]);
            assert_eq!(Block::link_of(got[1]), got[1] as usize);
            page.push(got[2]);
            assert_eq!(Block::link_of(got[2]), got[1] as usize ^ got[2] as usize);
            assert!(Block::link_of(got[2]) < LINK_WINDOW);
            assert_eq!(Block::next_of(got[2]), got[1]);
        }
    }

    #[test]
    fn a_retired_record_holds_the_sentinel() {
        let mut area = area();
        let buf = &mut area.0[..64];
        let page = page_over(buf, 64);
        page.retire();
        assert!(!page.in_use.get());
        assert_eq!(page.used.get(), UNUSED_SENTINEL);
        let fresh = Page::UNUSED;
        assert_eq!(fresh.used.get(), UNUSED_SENTINEL);
        assert!(!fresh.in_use.get());
    }

    #[test]
    #[should_panic(expected = "free + ")]
    fn check_names_a_count_that_does_not_add_up() {
        let mut area = area();
        let buf = &mut area.0[..64];
        let page = page_over(buf, 64);
        unsafe {
            page.extend();
            page.check(); // consistent: 16 free, 0 used
            page.used.set(3); // as a lost block would leave it
            page.check();
        }
    }
}
