//! Where the resident memory goes: each of hakmem's own regions measured with `mincore`
//! (what is in memory now, not what was mapped or estimated), split by what holds it.
//! Written into the stats JSON at exit under `HAKMEM_FOOTPRINT=1` (`hakprof footprint`),
//! beside the process's RSS, so what is not hakmem's (the program's own code and data,
//! other libraries, thread stacks) is the difference; and once more as it was at the
//! process's peak: in that mode the pool's refills and the big allocations look at the
//! resident set (at most once per clock tick) and measure again each time it has grown by
//! 1/32 since the last measure (`note_progress`). Nothing here allocates; it reads page
//! tables, the segment map, the heap list and (tried for a bounded time) the registry.

use crate::big::registry;
use crate::header::{AllocHeader, State, MAGIC};
use crate::learn::{sites, stacks};
use crate::os;
use crate::pool::{heap, segment};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

/// Resident bytes by holder.
#[derive(Clone, Copy, Debug, Default)]
pub struct Footprint {
    /// The process's resident set (`/proc/self/statm`), everything included.
    pub process_rss: usize,
    /// The writable data and `.bss` of the object hakmem is linked into (`libhakmem.so`
    /// under `LD_PRELOAD`; a Rust program's executable otherwise), all of it; then three
    /// parts of it by name.
    pub statics: usize,
    /// The call-site table and its columns (the sites mode's stacks, sizes, …).
    pub site_table: usize,
    /// The sites mode's sampled stacks.
    pub stack_table: usize,
    /// The byte map saying which 4 MiB chunks are pool segments.
    pub segment_map: usize,
    /// Pool segments: their headers (page records), and their pages (blocks, free or not).
    pub segments: usize,
    pub segment_headers: usize,
    pub segment_pages: usize,
    /// Heaps (one per thread that allocated; parked ones too).
    pub heaps: usize,
    pub heap_bytes: usize,
    /// Big blocks, live and held by the BigCache, with their headers.
    pub big_live: usize,
    pub big_cached: usize,
    /// The big-block registry's array.
    pub registry: usize,
    /// The registry stayed busy: the big-block lines are missing (0), not measured.
    pub registry_busy: bool,
}

/// How long the registry is tried for (a report from a signal handler must not hang).
const REGISTRY_WAIT_NS: u64 = 20_000_000;

/// Measures every region now.
pub fn measure() -> Footprint {
    let mut f = Footprint {
        process_rss: process_rss(),
        ..Footprint::default()
    };
    f.statics = statics_resident();
    for (p, len) in sites::regions() {
        f.site_table += os::resident(p, len);
    }
    let (p, len) = stacks::region();
    f.stack_table = os::resident(p, len);
    let (p, len) = segment::map_region();
    f.segment_map = os::resident(p, len);
    segment::for_each_address(|s| {
        f.segments += 1;
        let head = os::round_up(segment::HEADER_BYTES, os::PAGE);
        f.segment_headers += os::resident(s as *const u8, head);
        let rest = (s + head) as *const u8;
        f.segment_pages += os::resident(rest, segment::SEGMENT_SIZE - head);
    });
    heap::for_each_heap(|h, len| {
        f.heaps += 1;
        f.heap_bytes += os::resident(h, len);
    });
    let (mut live, mut cached, mut array) = (0, 0, 0);
    let done = registry::for_each_locked(
        REGISTRY_WAIT_NS,
        |p| {
            // SAFETY: a recorded big block has its header mapped in the 32 bytes before it,
            // and it stays mapped while the registry is held.
            let h = unsafe { &*AllocHeader::of(p) };
            if h.magic != MAGIC {
                return;
            }
            let bytes = os::resident(h.base(p) as *const u8, h.span as usize);
            match h.state {
                State::Cached => cached += bytes,
                _ => live += bytes,
            }
        },
        |p, len| array = os::resident(p, len),
    );
    (f.big_live, f.big_cached, f.registry, f.registry_busy) = (live, cached, array, !done);
    f
}

/// `HAKMEM_FOOTPRINT=1`: the peak is watched (`enable`, at start-up).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// A thread is measuring into `AT_PEAK`, or reading it: others skip (or wait a bounded
/// time, at exit).
static BUSY: AtomicBool = AtomicBool::new(false);
static LAST_LOOK_NS: AtomicU64 = AtomicU64::new(0);
/// The resident set of the last measure at the peak (0: none yet).
static PEAK_RSS: AtomicUsize = AtomicUsize::new(0);

struct AtPeak(UnsafeCell<Footprint>);
// SAFETY: written and read only by the thread that holds `BUSY`.
unsafe impl Sync for AtPeak {}
static AT_PEAK: AtPeak = AtPeak(UnsafeCell::new(Footprint {
    process_rss: 0,
    statics: 0,
    site_table: 0,
    stack_table: 0,
    segment_map: 0,
    segments: 0,
    segment_headers: 0,
    segment_pages: 0,
    heaps: 0,
    heap_bytes: 0,
    big_live: 0,
    big_cached: 0,
    registry: 0,
    registry_busy: false,
}));

/// In a fork child: a measure another thread of the parent was taking never ends here, so
/// its flag is cleared (the snapshot it was writing may be torn; the child's next measure
/// at a larger resident set replaces it).
pub fn after_fork_in_child() {
    BUSY.store(false, Relaxed);
}

/// Watches the peak from now on (`HAKMEM_FOOTPRINT=1`).
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Off the fast paths (a pool refill, a big allocation): in the footprint mode, measures
/// again when the resident set has grown by 1/32 since the last measure. One load when the
/// mode is off.
#[inline]
pub fn note_progress() {
    if ENABLED.load(Relaxed) {
        look_at_the_peak();
    }
}

#[cold]
#[inline(never)]
fn look_at_the_peak() {
    let now = os::now_coarse_ns();
    let last = LAST_LOOK_NS.load(Relaxed);
    if now == last
        || LAST_LOOK_NS
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return; // one look per clock tick (a few ms), by one thread
    }
    let (rss, peak) = (process_rss(), PEAK_RSS.load(Relaxed));
    if rss <= peak + peak / 32 || BUSY.swap(true, Acquire) {
        return;
    }
    let f = measure();
    // SAFETY: we hold `BUSY`.
    unsafe { *AT_PEAK.0.get() = f };
    PEAK_RSS.store(f.process_rss.max(rss), Relaxed);
    BUSY.store(false, Release);
}

/// The footprint measured when the resident set was largest (within 1/32 and a clock
/// tick), if the peak was watched and measured; None if a measure is in flight past a
/// bounded wait.
pub fn at_peak() -> Option<Footprint> {
    if PEAK_RSS.load(Relaxed) == 0 {
        return None;
    }
    let deadline = os::now_ns() + 20_000_000;
    while BUSY.swap(true, Acquire) {
        if os::now_ns() > deadline {
            return None;
        }
        core::hint::spin_loop();
    }
    // SAFETY: we hold `BUSY`.
    let f = unsafe { *AT_PEAK.0.get() };
    BUSY.store(false, Release);
    Some(f)
}

/// The resident set from `/proc/self/statm` (its second field, in pages); 0 if unreadable.
fn process_rss() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: the path is NUL-terminated; the read fills at most the buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..n.max(0) as usize];
    let pages = text
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|f| core::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<usize>().ok())
        .unwrap_or(0);
    pages * os::PAGE
}

/// Resident bytes of the writable `PT_LOAD` segments (data, `.bss`) of the object this code
/// is linked into, found by `dl_iterate_phdr` (the loader's list: no allocation).
fn statics_resident() -> usize {
    struct Search {
        /// An address inside our object (one of our statics).
        inside: usize,
        resident: usize,
    }
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid `info` for one object, and `data` is the
        // `Search` handed to `dl_iterate_phdr` below.
        let (info, search) = unsafe { (&*info, &mut *(data as *mut Search)) };
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of that object.
        let phdrs =
            unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let base = info.dlpi_addr as usize;
        let loads = phdrs.iter().filter(|h| h.p_type == libc::PT_LOAD);
        let ours = loads.clone().any(|h| {
            let start = base + h.p_vaddr as usize;
            (start..start + h.p_memsz as usize).contains(&search.inside)
        });
        if !ours {
            return 0;
        }
        for h in loads.filter(|h| h.p_flags & libc::PF_W != 0) {
            let start = (base + h.p_vaddr as usize) as *const u8;
            search.resident += os::resident(start, h.p_memsz as usize);
        }
        1 // found: stop
    }
    let mut search = Search {
        inside: segment::map_region().0 as usize,
        resident: 0,
    };
    // SAFETY: `visit` matches the callback type and only reads what the loader hands it;
    // `search` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut search as *mut Search as *mut libc::c_void) };
    search.resident
}
