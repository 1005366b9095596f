//! Segments: 4 MiB, 4 MiB-aligned mappings cut into pages of one kind, owned by one heap.
//! Masking a pointer gives its segment, and the segment header (in page 0) holds every
//! page's record, so `free` finds a block's page with two arithmetic steps: no header,
//! no hash. A byte map with one entry per 4 MiB of address space says which chunks are
//! pool segments, so `free` can tell our pointers from foreign ones.

use super::list::Node;
use super::page::Page;
use crate::os;
use core::ptr;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

pub const SEGMENT_SHIFT: usize = 22;
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
const SEGMENT_MASK: usize = SEGMENT_SIZE - 1;

/// Page kinds: small pages (64 KiB) for blocks up to 8 KiB, medium (512 KiB) up to
/// 64 KiB, large (1 MiB) up to 256 KiB — at least 4 blocks per page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum PageKind {
    Small = 0,
    Medium = 1,
    Large = 2,
}

pub const KINDS: usize = 3;

impl PageKind {
    pub const fn shift(self) -> usize {
        match self {
            PageKind::Small => 16,
            PageKind::Medium => 19,
            PageKind::Large => 20,
        }
    }
    pub const fn page_size(self) -> usize {
        1 << self.shift()
    }
    /// Pages per segment, page 0 (the header) included.
    pub const fn pages(self) -> usize {
        SEGMENT_SIZE >> self.shift()
    }
    pub fn for_block(block_size: usize) -> PageKind {
        if block_size <= crate::size_class::SMALL_MAX {
            PageKind::Small
        } else if block_size <= crate::size_class::MEDIUM_MAX {
            PageKind::Medium
        } else {
            PageKind::Large
        }
    }
}

pub const MAX_PAGES: usize = SEGMENT_SIZE >> 16;
/// The size of a page record.
const RECORD: usize = core::mem::size_of::<Page>();
const _: () = assert!(RECORD.is_power_of_two());

/// The segment header, at the segment's first byte. Page 0 holds it and serves no blocks.
/// The page records come first: a block's record is then the segment's address plus the
/// record's offset, one add on the free path (record 0, page 0's own, is never in use).
#[repr(C)]
pub struct Segment {
    pub pages: [Page; MAX_PAGES],
    /// The heap (`heap::Heap`) that owns every page here, type-erased so that segments sit
    /// below heaps. Heaps are immortal, so this stays valid.
    pub owner: *mut (),
    /// `page_shift - 6` and the mask of a record's offset: a pointer shifted right by the
    /// one and masked with the other is the byte offset of its page's record (records are
    /// 64 bytes), one shift and one mask on the free path.
    pub record_shift: usize,
    pub record_mask: usize,
    pub kind: PageKind,
    /// Pages in use (of `kind.pages() - 1` usable).
    pub used_pages: usize,
    /// Links in one of the owner's segment lists (with free pages, or empty and cached).
    pub next: *mut Segment,
    pub prev: *mut Segment,
    pub in_free_list: bool,
    /// When the segment became empty (for the heap's cache of empty segments).
    pub emptied_at_ns: u64,
}

const _: () = assert!(core::mem::size_of::<Segment>() <= PageKind::Small.page_size());

// SAFETY: the accessors read and write the header's own `next`/`prev` fields.
unsafe impl Node for Segment {
    unsafe fn next(n: *mut Segment) -> *mut Segment {
        // SAFETY: a live segment header (the caller's guarantee).
        unsafe { (*n).next }
    }
    unsafe fn prev(n: *mut Segment) -> *mut Segment {
        // SAFETY: as above.
        unsafe { (*n).prev }
    }
    unsafe fn set_next(n: *mut Segment, v: *mut Segment) {
        // SAFETY: as above.
        unsafe { (*n).next = v }
    }
    unsafe fn set_prev(n: *mut Segment, v: *mut Segment) {
        // SAFETY: as above.
        unsafe { (*n).prev = v }
    }
}

/// One byte per 4 MiB chunk of the 47-bit user address space (32 MiB of `.bss`, only the
/// parts we touch become resident): `POOL` where a pool segment lives.
const MAP_ENTRIES: usize = 1 << (47 - SEGMENT_SHIFT);
static SEGMENT_MAP: [AtomicU8; MAP_ENTRIES] = [const { AtomicU8::new(0) }; MAP_ENTRIES];
const POOL: u8 = 1;

/// Every pool segment's address, in address order, from the segment map: only the map's
/// resident pages are read (a page of the map no segment ever touched holds none). The
/// segments are not read: a caller measures their ranges (`os::resident`), which is safe
/// even if another thread unmaps one meanwhile.
pub fn for_each_address(mut f: impl FnMut(usize)) {
    let map = SEGMENT_MAP.as_ptr() as usize;
    os::for_each_resident_page(map as *const u8, MAP_ENTRIES, |page| {
        let (from, to) = (
            page.max(map) - map,
            (page + os::PAGE).min(map + MAP_ENTRIES) - map,
        );
        for (i, entry) in SEGMENT_MAP.iter().enumerate().take(to).skip(from) {
            if entry.load(Relaxed) == POOL {
                f(i << SEGMENT_SHIFT);
            }
        }
    });
}

/// The bytes of a segment's header (its page records and fields), at its start.
pub const HEADER_BYTES: usize = core::mem::size_of::<Segment>();

/// The segment map's own place (`.bss`): for the footprint.
pub fn map_region() -> (*const u8, usize) {
    (SEGMENT_MAP.as_ptr() as *const u8, MAP_ENTRIES)
}

/// Whether `p` points into a pool segment of this allocator.
#[inline(always)]
pub fn is_pool(p: *const u8) -> bool {
    let idx = (p as usize) >> SEGMENT_SHIFT;
    idx < MAP_ENTRIES && SEGMENT_MAP[idx].load(Relaxed) == POOL
}

/// Whether `p` (in a pool segment) lies past the segment's header page, where blocks live.
#[inline]
pub fn in_block_area(p: *const u8) -> bool {
    (p as usize) & SEGMENT_MASK >= PageKind::Small.page_size()
}

/// The segment holding `p` (which must point into a pool segment).
#[inline(always)]
pub fn segment_of(p: *const u8) -> *mut Segment {
    ((p as usize) & !SEGMENT_MASK) as *mut Segment
}

/// The page record for `p` inside `seg`.
///
/// # Safety
/// `p` must point into `seg`, a live segment.
#[inline(always)]
pub unsafe fn page_of(seg: *mut Segment, p: *const u8) -> *mut Page {
    // SAFETY: `p` lies in `seg`, so the index is below `kind.pages() <= MAX_PAGES`.
    unsafe {
        let at = ((p as usize) >> (*seg).record_shift) & (*seg).record_mask;
        (&raw mut (*seg).pages).cast::<u8>().add(at).cast::<Page>()
    }
}

/// Maps a new segment of `kind` owned by `owner`. Null when the OS says no.
pub fn create(kind: PageKind, owner: *mut ()) -> *mut Segment {
    let p = os::map_aligned(SEGMENT_SIZE, SEGMENT_SIZE);
    if p.is_null() {
        return ptr::null_mut();
    }
    let seg = p as *mut Segment;
    // SAFETY: `p` is a fresh, zeroed, exclusively ours 4 MiB mapping; the header fits in
    // its first page (checked above at compile time). Zero bytes are a valid `Segment`
    // apart from the fields set here (null pointers, empty pages, `Small` kind).
    unsafe {
        (*seg).owner = owner;
        (*seg).kind = kind;
        (*seg).record_shift = kind.shift() - RECORD.trailing_zeros() as usize;
        (*seg).record_mask = (SEGMENT_MASK >> (*seg).record_shift) & !(RECORD - 1);
        // Every record starts out of use, page 0's (the header's own) included: a stray
        // free into one aborts (see `Page::UNUSED`).
        let pages = (&raw mut (*seg).pages).cast::<Page>();
        for i in 0..kind.pages() {
            pages.add(i).write(Page::UNUSED);
        }
    }
    SEGMENT_MAP[(p as usize) >> SEGMENT_SHIFT].store(POOL, Relaxed);
    seg
}

/// Unmaps an empty segment.
///
/// # Safety
/// No page of `seg` may be in use, and it must be on no list.
pub unsafe fn destroy(seg: *mut Segment) {
    SEGMENT_MAP[(seg as usize) >> SEGMENT_SHIFT].store(0, Relaxed);
    // SAFETY: per the caller, nothing refers to the segment any more.
    unsafe { os::unmap(seg as *mut u8, SEGMENT_SIZE) };
}

/// Takes a free page slot of `seg` and returns it with its block area.
///
/// # Safety
/// `seg` must be live, owned by the caller's heap, with `used_pages < kind.pages() - 1`.
pub unsafe fn take_page(seg: *mut Segment) -> (*mut Page, *mut u8, usize) {
    // SAFETY: the header is live and ours; indices stay below `kind.pages()`.
    unsafe {
        let kind = (*seg).kind;
        // A slot not waiting for its purge before one that is: that one is another size
        // class's (`pages::resident_slot` took any of this class's), and a class of large
        // blocks purges it before use. (A slot not waiting is mostly clean: never used, or
        // purged; or resident, in a cached segment taken back whole.)
        let mut waiting = 0;
        for i in 1..kind.pages() {
            let page = (&raw mut (*seg).pages).cast::<Page>().add(i);
            if !(*page).in_use.get() {
                if !(*page).purge_pending.get() {
                    return take_this_page(seg, page);
                }
                if waiting == 0 {
                    waiting = i;
                }
            }
        }
        if waiting != 0 {
            return take_this_page(seg, (&raw mut (*seg).pages).cast::<Page>().add(waiting));
        }
    }
    unreachable_free_page()
}

/// Takes the free page slot of `page`, a record of `seg` out of use (a slot given back
/// earlier, still resident). Returns it as `take_page` does.
///
/// # Safety
/// As `take_page`; `page` is one of `seg`'s records, out of use.
pub unsafe fn take_this_page(seg: *mut Segment, page: *mut Page) -> (*mut Page, *mut u8, usize) {
    // SAFETY: per the caller; the record's index is its offset in the header's array.
    unsafe {
        let kind = (*seg).kind;
        let i = page.offset_from((&raw mut (*seg).pages).cast::<Page>()) as usize;
        debug_assert!(i >= 1 && i < kind.pages() && !(*page).in_use.get());
        (*seg).used_pages += 1;
        (
            page,
            (seg as *mut u8).add(i << kind.shift()),
            kind.page_size(),
        )
    }
}

#[cold]
fn unreachable_free_page() -> ! {
    crate::diag::eprint_line(format_args!(
        "hakmem: internal error: segment has no free page"
    ));
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// Checks a segment's invariants and panics naming the first one broken (debug builds and
/// the stress tests): the segment map marks it, its owner is `owner`, page 0 (the header)
/// is never in use, and `used_pages` counts the records in use. Returns those records.
///
/// # Safety
/// `seg` must be a live segment owned by the calling thread's heap.
pub unsafe fn check(seg: *mut Segment, owner: *mut ()) {
    assert!(
        is_pool(seg as *const u8),
        "segment {seg:p}: not in the segment map"
    );
    // SAFETY: a live segment header, owned by the caller; indices below `kind.pages()`.
    unsafe {
        assert_eq!((*seg).owner, owner, "segment {seg:p}: another heap's");
        let pages = (&raw mut (*seg).pages).cast::<Page>();
        assert!(
            !(*pages).in_use.get(),
            "segment {seg:p}: page 0 (the header) in use"
        );
        let in_use = (1..(*seg).kind.pages())
            .filter(|&i| (*pages.add(i)).in_use.get())
            .count();
        assert_eq!(in_use, (*seg).used_pages, "segment {seg:p}: used_pages");
    }
}

/// Whether every usable page of `seg` is in use.
///
/// # Safety
/// `seg` must be live.
pub unsafe fn is_full(seg: *mut Segment) -> bool {
    // SAFETY: live header.
    unsafe { (*seg).used_pages == (*seg).kind.pages() - 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::size_class::{bin_size, NBINS};

    #[test]
    fn every_size_class_fits_at_least_four_blocks_in_its_page_kind() {
        for bin in 0..NBINS {
            let bs = bin_size(bin);
            let kind = PageKind::for_block(bs);
            assert!(
                kind.page_size() / bs >= 4,
                "class {bin} ({bs} B) in {kind:?} pages"
            );
            assert!(kind.pages() <= MAX_PAGES);
        }
    }

    #[test]
    fn the_segment_map_knows_a_segment_from_creation_to_destruction() {
        let owner = 0x1234 as *mut ();
        let seg = create(PageKind::Medium, owner);
        assert!(!seg.is_null());
        assert_eq!(seg as usize % SEGMENT_SIZE, 0, "4 MiB-aligned");
        let inside = (seg as usize + 3 * (1 << 19) + 100) as *const u8;
        assert!(is_pool(seg as *const u8) && is_pool(inside));
        assert!(!in_block_area(seg as *const u8) && in_block_area(inside));
        assert_eq!(segment_of(inside), seg);
        unsafe {
            let page = page_of(seg, inside);
            let first = (&raw mut (*seg).pages).cast::<Page>();
            assert_eq!(page, first.add(3), "medium pages are 512 KiB");
            check(seg, owner); // fresh: nothing in use
            assert!(
                !(*page).in_use.get() && (*page).used.get() == 1,
                "out of use"
            );
            let (p, start, len) = take_page(seg);
            assert_eq!(
                (p, start as usize, len),
                (first.add(1), seg as usize + (1 << 19), 1 << 19)
            );
            Page::init(p, 20, bin_size(20), start, len);
            check(seg, owner);
            (*p).retire();
            (*seg).used_pages -= 1;
            destroy(seg);
        }
        assert!(!is_pool(inside), "gone from the map");
        assert!(
            !is_pool(usize::MAX as *const u8),
            "beyond 47 bits: not ours"
        );
    }
}
