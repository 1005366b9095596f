//! A page: blocks of one size class carved from 64 KiB (small) or 512 KiB (medium) of a
//! segment, with two intrusive LIFO free lists:
//! - `free`: touched only by the owning thread (the fast paths);
//! - `thread_free`: other threads push freed blocks here with a CAS; the owner takes the
//!   whole list with one swap in its slow path. Bit 0 of it says "this page is on the
//!   owner's full list", so a remote freer learns in the same CAS that it must wake the
//!   owner (see `heap::free_remote`).

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

/// Bit 0 of `thread_free`: the page sits on its owner's full list.
pub const FULL_BIT: usize = 1;

#[repr(C)]
pub struct Page {
    /// Owner-only free list: the fast paths pop and push here.
    pub free: *mut Block,
    /// Blocks handed out and not yet returned to `free` (remote frees count until collected).
    pub used: u32,
    /// Owner-only: the page is on the heap's full list.
    pub in_full: bool,
    /// The page is carved out for a size class (false: a free slot of its segment).
    pub in_use: bool,
    pub bin: u8,
    _pad: u8,
    /// Blocks carved so far (carving is lazy, a few KiB at a time, to keep RSS honest).
    pub capacity: u32,
    /// Blocks that fit in the page.
    pub reserved: u32,
    pub block_size: usize,
    /// Blocks freed by other threads (a pointer, with `FULL_BIT`).
    pub thread_free: AtomicUsize,
    /// Links in the heap's queue for `bin`, or in its full list.
    pub next: *mut Page,
    pub prev: *mut Page,
    /// First byte of the page's block area.
    pub start: *mut u8,
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);

impl Page {
    pub const EMPTY: Page = Page {
        free: ptr::null_mut(),
        used: 0,
        in_full: false,
        in_use: false,
        bin: 0,
        _pad: 0,
        capacity: 0,
        reserved: 0,
        block_size: 0,
        thread_free: AtomicUsize::new(0),
        next: ptr::null_mut(),
        prev: ptr::null_mut(),
        start: ptr::null_mut(),
    };

    /// Pops a block off the owner's free list; null when it is empty. The allocation fast
    /// path is this plus the TLS read and the bin lookup.
    ///
    /// # Safety
    /// Owner only; every block on `free` is a free block of this page.
    #[inline(always)]
    pub unsafe fn pop(&mut self) -> *mut Block {
        let block = self.free;
        if !block.is_null() {
            // One load of the link, two stores. No lock, no atomic RMW.
            // SAFETY: a free block's first word is its link.
            self.free = unsafe { (*block).next };
            self.used += 1;
        }
        block
    }

    /// Pushes a freed block onto the owner's free list (the local free fast path).
    ///
    /// # Safety
    /// Owner only; `block` is a live block of this page that the caller gives up.
    #[inline(always)]
    pub unsafe fn push(&mut self, block: *mut Block) {
        // SAFETY: the caller gave us the block; its first word becomes the link.
        unsafe { (*block).next = self.free };
        self.free = block;
        self.used -= 1;
    }

    /// Sets the page up for `bin` blocks of `block_size` over `len` bytes at `start`.
    pub fn init(&mut self, bin: usize, block_size: usize, start: *mut u8, len: usize) {
        *self = Page::EMPTY;
        self.in_use = true;
        self.bin = bin as u8;
        self.block_size = block_size;
        self.reserved = (len / block_size) as u32;
        self.start = start;
    }

    /// Carves up to a few KiB of not-yet-used blocks onto `free` (which must be empty).
    /// Returns whether any were added.
    ///
    /// # Safety
    /// The page must be in use and owned by the calling thread.
    pub unsafe fn extend(&mut self) -> bool {
        const EXTEND_BYTES: usize = 16 * 1024;
        let left = (self.reserved - self.capacity) as usize;
        if left == 0 {
            return false;
        }
        let n = (EXTEND_BYTES / self.block_size).clamp(1, left);
        let bs = self.block_size;
        // SAFETY: blocks capacity .. capacity + n lie inside the page's block area
        // (capacity + n <= reserved), which is mapped and owned by this thread.
        unsafe {
            let first = self.start.add(self.capacity as usize * bs);
            for i in 0..n - 1 {
                let b = first.add(i * bs) as *mut Block;
                (*b).next = first.add((i + 1) * bs) as *mut Block;
            }
            let last = first.add((n - 1) * bs) as *mut Block;
            (*last).next = self.free;
            self.free = first as *mut Block;
        }
        self.capacity += n as u32;
        true
    }

    /// Moves every block other threads freed onto `free`, and clears `FULL_BIT`.
    /// Returns how many blocks came back.
    ///
    /// # Safety
    /// Owner only.
    pub unsafe fn collect_remote(&mut self) -> u32 {
        if self.thread_free.load(Ordering::Relaxed) & !FULL_BIT == 0 {
            return 0;
        }
        let list = self.thread_free.swap(0, Ordering::Acquire) & !FULL_BIT;
        let mut n = 0u32;
        let mut tail = list as *mut Block;
        // SAFETY: every block on the list was handed out from this page and pushed by
        // `push_remote`, which wrote its `next` before publishing it (Release/Acquire).
        unsafe {
            loop {
                n += 1;
                let next = (*tail).next;
                if next.is_null() {
                    break;
                }
                tail = next;
            }
            (*tail).next = self.free;
        }
        self.free = list as *mut Block;
        self.used -= n;
        n
    }

    /// Pushes `block` onto `thread_free` from another thread. Returns whether the page
    /// was on its owner's full list at that moment.
    ///
    /// # Safety
    /// `block` must be a block of this page that the caller owns and gives up.
    pub unsafe fn push_remote(&self, block: *mut Block) -> bool {
        let mut old = self.thread_free.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller gave us the block; its first word is free for the link.
            unsafe { (*block).next = (old & !FULL_BIT) as *mut Block };
            let new = block as usize | (old & FULL_BIT);
            match self.thread_free.compare_exchange_weak(
                old,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return old & FULL_BIT != 0,
                Err(cur) => old = cur,
            }
        }
    }

    /// Owner: marks the page full unless other threads freed blocks meanwhile.
    /// Returns true if it is now marked full; false if blocks came back (now on `free`).
    ///
    /// # Safety
    /// Owner only, with `free` empty.
    pub unsafe fn try_mark_full(&mut self) -> bool {
        if self
            .thread_free
            .compare_exchange(0, FULL_BIT, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        // SAFETY: owner, as the caller guarantees.
        unsafe { self.collect_remote() };
        false
    }

    /// Owner: clears `FULL_BIT` (the page leaves the full list).
    pub fn clear_full_bit(&self) {
        self.thread_free.fetch_and(!FULL_BIT, Ordering::AcqRel);
    }
}

/// A doubly linked list of pages (one size class's queue, or the full list).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct PageQueue {
    pub first: *mut Page,
    pub last: *mut Page,
}

impl PageQueue {
    pub const EMPTY: PageQueue = PageQueue {
        first: ptr::null_mut(),
        last: ptr::null_mut(),
    };

    /// # Safety
    /// `p` must be a live page on no list.
    pub unsafe fn push_front(&mut self, p: *mut Page) {
        // SAFETY: `p` and the pages on this list are live page records.
        unsafe {
            (*p).prev = ptr::null_mut();
            (*p).next = self.first;
            if self.first.is_null() {
                self.last = p;
            } else {
                (*self.first).prev = p;
            }
        }
        self.first = p;
    }

    /// # Safety
    /// `p` must be on this list.
    pub unsafe fn remove(&mut self, p: *mut Page) {
        // SAFETY: `p` and its neighbours are live pages on this list.
        unsafe {
            let (prev, next) = ((*p).prev, (*p).next);
            if prev.is_null() {
                self.first = next;
            } else {
                (*prev).next = next;
            }
            if next.is_null() {
                self.last = prev;
            } else {
                (*next).prev = prev;
            }
            (*p).next = ptr::null_mut();
            (*p).prev = ptr::null_mut();
        }
    }
}
