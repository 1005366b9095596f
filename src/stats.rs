//! What the allocator did, for people and for benchmarks: `HAKMEM_STATS=1` prints a short
//! report on stderr at exit, `HAKMEM_STATS_JSON=<path>` writes the same as JSON (`%p` in
//! the path becomes the process id, for programs that fork). This is how a run confirms
//! that hakmem really served it. Each report names its process (program, pid, elapsed
//! time, peak RSS, page faults), and `HAKMEM_STATS=<program>[,<program>…]` reports only
//! those programs, so a shell or a launcher's own processes stay quiet. Nothing here
//! allocates.

use crate::big::{self, cache};
use crate::config::{self, Config};
use crate::diag::{self, MapBuf, StackBuf};
use crate::learn::{self, lifecycle::Phase, sites, stacks, ucb1};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, Ordering::Relaxed};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The descriptor the human report goes to: a duplicate of stderr made at set-up, since
/// some programs close their stderr before exit (coreutils' `close_stdout`); 0: fd 2.
static REPORT_FD: AtomicI32 = AtomicI32::new(0);

/// Called once at the process set-up (`init`): when `HAKMEM_STATS` is set, keeps a
/// duplicate of stderr (close-on-exec, numbered 100 or above) for the exit report.
pub fn keep_stderr_for_report() {
    if config::getenv("HAKMEM_STATS").is_some() {
        // SAFETY: fcntl on fd 2 has no memory effects; a failure leaves the report on fd 2.
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
        if fd >= 0 {
            REPORT_FD.store(fd, Relaxed);
        }
    }
}

/// Seconds since this process started: `/proc/self/stat`'s start time (clock ticks since
/// boot) against `CLOCK_BOOTTIME`. None if `/proc` cannot be read.
fn elapsed_since_start_ns() -> Option<u64> {
    let mut buf = [0u8; 1024];
    // SAFETY: the path is NUL-terminated; read fills at most the buffer.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return None;
        }
        let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
        libc::close(fd);
        n
    };
    let text = core::str::from_utf8(&buf[..n.max(0) as usize]).ok()?;
    // Fields after the command name (which may hold spaces and parentheses): the start
    // time is field 22, the 20th after ")".
    let after = &text[text.rfind(')')? + 1..];
    let ticks: u64 = after.split_ascii_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf and clock_gettime have no memory preconditions beyond `ts`.
    let (hz, now) = unsafe {
        let mut ts: libc::timespec = core::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts);
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as u64,
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        )
    };
    Some(now.saturating_sub(ticks * (1_000_000_000 / hz)))
}

/// The process a report is about.
#[derive(Clone, Copy)]
pub struct Process {
    /// `/proc/self/comm`: the name `ps` and `top` show.
    comm: [u8; 16],
    comm_len: usize,
    /// The executable's file name (`/proc/self/exe`).
    exe: [u8; 64],
    exe_len: usize,
    pub pid: i32,
    pub elapsed_ns: u64,
    pub peak_rss_kib: i64,
    pub minor_faults: i64,
    pub major_faults: i64,
}

impl Process {
    pub fn comm(&self) -> &str {
        core::str::from_utf8(&self.comm[..self.comm_len]).unwrap_or("?")
    }
    pub fn exe(&self) -> &str {
        core::str::from_utf8(&self.exe[..self.exe_len]).unwrap_or("?")
    }
}

/// This process: its names from `/proc`, its resource usage from `getrusage`.
pub fn process() -> Process {
    let mut p = Process {
        comm: [0; 16],
        comm_len: 0,
        exe: [0; 64],
        exe_len: 0,
        // SAFETY: getpid has no preconditions.
        pid: unsafe { libc::getpid() },
        elapsed_ns: elapsed_since_start_ns().unwrap_or(0),
        peak_rss_kib: 0,
        minor_faults: 0,
        major_faults: 0,
    };
    // SAFETY: the path is NUL-terminated; read fills at most the buffer.
    unsafe {
        let fd = libc::open(
            c"/proc/self/comm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let n = libc::read(fd, p.comm.as_mut_ptr() as *mut libc::c_void, p.comm.len());
            libc::close(fd);
            p.comm_len = (n.max(0) as usize).min(p.comm.len());
        }
    }
    while p.comm_len > 0 && p.comm[p.comm_len - 1] == b'\n' {
        p.comm_len -= 1;
    }
    let mut path = [0u8; 256];
    // SAFETY: readlink writes at most `path.len()` bytes and does not NUL-terminate.
    let n = unsafe {
        libc::readlink(
            c"/proc/self/exe".as_ptr(),
            path.as_mut_ptr() as *mut libc::c_char,
            path.len(),
        )
    };
    let path = &path[..(n.max(0) as usize).min(256)];
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    let len = base.len().min(p.exe.len());
    p.exe[..len].copy_from_slice(&base[..len]);
    p.exe_len = len;
    // SAFETY: getrusage fills a zeroed struct.
    unsafe {
        let mut ru: libc::rusage = core::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 {
            p.peak_rss_kib = ru.ru_maxrss;
            p.minor_faults = ru.ru_minflt;
            p.major_faults = ru.ru_majflt;
        }
    }
    p
}

/// Whether `HAKMEM_STATS=value` asks for a report from the process named `comm` (executable
/// `exe`): a number other than 0 means every process; otherwise a comma-separated list of
/// program names, each matching the process name or the executable's file name.
pub fn stats_wanted(value: &str, comm: &str, exe: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    if let Ok(n) = value.parse::<u64>() {
        return n != 0;
    }
    value
        .split(',')
        .map(str::trim)
        .any(|name| !name.is_empty() && (name == comm || name == exe))
}

/// The (up to) `N` sites with the most bytes: table index and bytes, largest first.
fn top_sites<const N: usize>() -> ([(usize, u64); N], usize) {
    let mut top = [(0usize, 0u64); N];
    let mut n = 0;
    for (i, e) in sites::TABLE.iter().enumerate() {
        let b = e.bytes.load(Relaxed);
        if b == 0 {
            continue;
        }
        let mut k = n.min(N);
        while k > 0 && top[k - 1].1 < b {
            if k < N {
                top[k] = top[k - 1];
            }
            k -= 1;
        }
        if k < N {
            top[k] = (i, b);
            n = (n + 1).min(N);
        }
    }
    (top, n)
}

/// `text` inside a JSON string: quotes, backslashes and control characters become `?`
/// (process names are free text; the report must stay valid JSON).
fn write_json_text(w: &mut impl Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        w.write_char(if c == '"' || c == '\\' || c.is_control() {
            '?'
        } else {
            c
        })?;
    }
    Ok(())
}

/// The site's id as reports print it (`other` for the shared overflow entry).
fn write_site_id(w: &mut impl Write, i: usize) -> fmt::Result {
    if i == sites::OTHER {
        w.write_str("other")
    } else {
        write!(w, "{:#010x}", sites::TABLE[i].site().map_or(0, |s| s.0))
    }
}

/// The sites mode's heap lines: live bytes now and at the peak, and allocations by size
/// (power-of-two buckets, the empty ones left out), as mimalloc's statistics show them.
fn write_heap(w: &mut impl Write) -> fmt::Result {
    w.write_str("  heap     : ")?;
    write_size(w, sites::heap_live())?;
    w.write_str(" live at exit, ")?;
    write_size(w, sites::heap_peak())?;
    w.write_str(" at the peak (every counted block)\n")?;
    w.write_str("  sizes    :")?;
    for k in 0..sites::SIZE_BUCKETS {
        let n = sites::size_total(k);
        if n == 0 {
            continue;
        }
        if k + 1 == sites::SIZE_BUCKETS {
            write!(w, " >64M {n}")?;
        } else {
            let upto = 16u64 << k;
            match upto {
                u if u < 1 << 10 => write!(w, " ≤{u} {n}")?,
                u if u < 1 << 20 => write!(w, " ≤{}K {n}", u >> 10)?,
                u => write!(w, " ≤{}M {n}", u >> 20)?,
            }
        }
    }
    w.write_str("\n")
}

/// `n` bytes as people read them, never rounded up to the next unit: `20000 B` below
/// 64 KiB, then KiB, MiB or GiB with one decimal, truncated (1 048 572 B is `1023.9 KiB`,
/// not `1024.0 KiB`).
fn write_size(w: &mut impl Write, n: i64) -> fmt::Result {
    let a = n.unsigned_abs();
    let sign = if n < 0 { "-" } else { "" };
    let (unit, shift) = match a {
        a if a < 64 << 10 => return write!(w, "{n} B"),
        a if a < 1 << 20 => ("KiB", 10),
        a if a < 1 << 30 => ("MiB", 20),
        _ => ("GiB", 30),
    };
    let tenths = (a as u128 * 10) >> shift; // truncated
    write!(w, "{sign}{}.{} {unit}", tenths / 10, tenths % 10)
}

/// Where site `i`'s return address lies: `0xADDR symbol+0xOFF (module)` as far as the
/// loader knows (`other` for the shared overflow entry).
fn write_site_place(w: &mut impl Write, i: usize) -> fmt::Result {
    let addr = sites::ADDR[i].load(Relaxed);
    if i == sites::OTHER || addr == 0 {
        return write_site_id(w, i);
    }
    write!(w, "{addr:#x}")?;
    // SAFETY: all zeroes is a valid `Dl_info` (null pointers).
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: `dladdr` only reads the loader's tables and fills `info`, whose strings
    // point into loaded modules (alive while the process is).
    if unsafe { libc::dladdr(addr as *const libc::c_void, &mut info) } == 0 {
        return Ok(());
    }
    if !info.dli_sname.is_null() {
        // SAFETY: a NUL-terminated name in a loaded module's string table.
        let name = unsafe { core::ffi::CStr::from_ptr(info.dli_sname) };
        let off = addr.wrapping_sub(info.dli_saddr as usize);
        write!(w, " {}+{off:#x}", name.to_str().unwrap_or("?"))?;
    }
    if !info.dli_fname.is_null() {
        // SAFETY: as above, the module's path.
        let path = unsafe { core::ffi::CStr::from_ptr(info.dli_fname) };
        let path = path.to_str().unwrap_or("?");
        write!(w, " ({})", path.rsplit('/').next().unwrap_or(path))?;
    }
    Ok(())
}

/// Every counter, summed over threads.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub config: Config,
    pub syscalls: crate::os::SyscallCounts,
    pub pool: crate::pool::heap::PoolTotals,
    pub big: big::BigTotals,
    pub bigcache: cache::CacheTotals,
    pub madvise_batches: u64,
    pub phase: Phase,
    pub lifecycle_windows: u64,
    pub lifecycle_transitions: u64,
}

pub fn snapshot() -> Snapshot {
    let (lifecycle_windows, lifecycle_transitions) = learn::lifecycle_counts();
    Snapshot {
        config: *config::get(),
        syscalls: crate::os::syscall_counts(),
        pool: crate::pool::heap::totals(),
        big: big::totals(),
        bigcache: cache::totals(),
        madvise_batches: big::madvise::flushes(),
        phase: learn::phase(),
        lifecycle_windows,
        lifecycle_transitions,
    }
}

impl Snapshot {
    /// Allocations hakmem served (pool and big).
    pub fn allocations(&self) -> u64 {
        self.pool.allocs + self.big.allocs
    }

    /// BigCache hits over lookups (0 when none).
    pub fn bigcache_hit_rate(&self) -> f64 {
        let n = self.bigcache.hits + self.bigcache.misses;
        if n == 0 {
            0.0
        } else {
            self.bigcache.hits as f64 / n as f64
        }
    }

    pub fn write_json(&self, w: &mut impl Write) -> fmt::Result {
        // The footprint first: the report reads tables below (the sites, the learners), and
        // reading a page of `.bss` nobody wrote maps the zero page, which `mincore` counts
        // as resident though the process's RSS does not (the call-site table read 48 KiB
        // resident in a process that made no allocation).
        let footprint = footprint_wanted().then(crate::footprint::measure);
        let s = &self.syscalls;
        let c = &self.config;
        write!(w, "{{\"allocator\":\"hakmem\",\"version\":\"{VERSION}\",")?;
        let p = process();
        w.write_str("\"process\":{\"name\":\"")?;
        write_json_text(w, p.comm())?;
        w.write_str("\",\"exe\":\"")?;
        write_json_text(w, p.exe())?;
        write!(
            w,
            "\",\"pid\":{},\"elapsed_s\":{:.6},\"peak_rss_kib\":{},\"minor_faults\":{},\"major_faults\":{}}},",
            p.pid,
            p.elapsed_ns as f64 / 1e9,
            p.peak_rss_kib,
            p.minor_faults,
            p.major_faults
        )?;
        write!(
            w,
            "\"mode\":\"{}\",\"front\":\"{}\",",
            c.mode.name(),
            c.front.name()
        )?;
        write!(
            w,
            "\"switches\":{{\"elo\":{},\"ucb1\":{},\"bigcache\":{},\"batch_madvise\":{},\"lifecycle\":{}}},",
            c.elo, c.ucb1, c.bigcache, c.batch_madvise, c.lifecycle
        )?;
        write!(
            w,
            "\"syscalls\":{{\"mmap\":{},\"munmap\":{},\"madvise\":{},\"mremap\":{},\"mmap_failed\":{},\"munmap_failed\":{},\"madvise_failed\":{},\"unmap_pending\":{},\"unmap_pending_bytes\":{}}},",
            s.mmap,
            s.munmap,
            s.madvise,
            s.mremap,
            s.mmap_failed,
            s.munmap_failed,
            s.madvise_failed,
            s.unmap_pending,
            s.unmap_pending_bytes
        )?;
        let pl = &self.pool;
        write!(
            w,
            "\"pool\":{{\"allocs\":{},\"frees\":{},\"remote_frees\":{},\"heaps\":{},\"remote_batches\":{},\"remote_cas_retries\":{},\"collections\":{},\"collected_blocks\":{},\"collected_pages\":{}}},",
            pl.allocs,
            pl.frees,
            pl.remote_frees,
            pl.heaps,
            pl.remote_batches,
            pl.remote_cas_retries,
            pl.collections,
            pl.collected_blocks,
            pl.collected_pages
        )?;
        write!(
            w,
            "\"big\":{{\"allocs\":{},\"frees\":{},\"splits\":{},\"huge_maps\":{}}},",
            self.big.allocs, self.big.frees, self.big.splits, self.big.huge_maps
        )?;
        let b = &self.bigcache;
        write!(
            w,
            "\"bigcache\":{{\"hits\":{},\"misses\":{},\"evictions\":{},\"puts\":{},\"resized\":{},\"borrowed\":{},\"bytes\":{},\"cap_bytes\":{}}},",
            b.hits, b.misses, b.evictions, b.puts, b.resized, b.borrowed, b.bytes, c.bigcache_cap
        )?;
        write!(w, "\"madvise_batches\":{},", self.madvise_batches)?;
        write!(
            w,
            "\"lifecycle\":{{\"state\":\"{}\",\"windows\":{},\"transitions\":{}}},",
            self.phase.name(),
            self.lifecycle_windows,
            self.lifecycle_transitions
        )?;
        let mut partial = Partial::default();
        write_elo(w, &mut partial)?;
        write_ucb1(w, &mut partial)?;
        write_sites(w, self.config.sites)?;
        if self.config.sites {
            write_maps(w)?;
        }
        partial.write_json(w)?;
        if let Some(f) = footprint {
            write_footprint(w, "footprint", &f)?;
            if let Some(f) = crate::footprint::at_peak() {
                write_footprint(w, "footprint_at_peak", &f)?;
            }
        }
        match ENDED_BY_SIGNAL.load(Relaxed) {
            0 => write!(w, "}}"),
            sig => write!(w, ",\"signal\":{sig}}}"),
        }
    }

    pub fn write_human(&self, w: &mut impl Write, p: &Process) -> fmt::Result {
        let s = &self.syscalls;
        let c = &self.config;
        writeln!(
            w,
            "hakmem {VERSION} stats for {} (pid {}, executable {}): {:.3} s, peak RSS {:.1} MiB, {} minor + {} major page faults (mode {}, front {})",
            p.comm(),
            p.pid,
            p.exe(),
            p.elapsed_ns as f64 / 1e9,
            p.peak_rss_kib as f64 / 1024.0,
            p.minor_faults,
            p.major_faults,
            c.mode.name(),
            c.front.name()
        )?;
        let pl = &self.pool;
        writeln!(
            w,
            "  pool     : {} allocs, {} frees ({} remote), {} heaps",
            pl.allocs,
            pl.frees + pl.remote_frees,
            pl.remote_frees,
            pl.heaps
        )?;
        if pl.remote_frees > 0 {
            let per = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            writeln!(
                w,
                "  remote   : {} batches ({:.1} blocks each, {} CAS retries), {} collections ({:.1} blocks, {:.1} pages each)",
                pl.remote_batches,
                per(pl.remote_frees, pl.remote_batches),
                pl.remote_cas_retries,
                pl.collections,
                per(pl.collected_blocks, pl.collections),
                per(pl.collected_pages, pl.collections)
            )?;
        }
        writeln!(
            w,
            "  big      : {} allocs, {} frees, {} cached blocks split, {} mapped for huge pages",
            self.big.allocs, self.big.frees, self.big.splits, self.big.huge_maps
        )?;
        writeln!(
            w,
            "  bigcache : {} hits, {} misses ({:.1} % hit), {} evictions",
            self.bigcache.hits,
            self.bigcache.misses,
            100.0 * self.bigcache_hit_rate(),
            self.bigcache.evictions
        )?;
        w.write_str("  learner  : ")?;
        if c.elo {
            w.write_str("ELO")?;
        } else {
            write!(w, "off, fixed {} KiB threshold", c.fixed_threshold >> 10)?;
        }
        writeln!(
            w,
            " (lifecycle {}, {} windows), {} madvise batches",
            self.phase.name(),
            self.lifecycle_windows,
            self.madvise_batches
        )?;
        write!(
            w,
            "  sys      : {} mmap, {} munmap, {} madvise, {} mremap",
            s.mmap, s.munmap, s.madvise, s.mremap
        )?;
        if s.mmap_failed + s.munmap_failed + s.madvise_failed > 0 {
            write!(
                w,
                "; refused: {} mmap, {} munmap, {} madvise ({} ranges, {:.1} MiB, wait to be unmapped: their pages are given back)",
                s.mmap_failed,
                s.munmap_failed,
                s.madvise_failed,
                s.unmap_pending,
                s.unmap_pending_bytes as f64 / (1 << 20) as f64
            )?;
        }
        w.write_str("\n")?;
        if c.sites {
            write_heap(w)?;
        }
        let (top, n) = top_sites::<5>();
        if n == 0 {
            return Ok(());
        }
        if !c.sites {
            w.write_str("  top sites (big blocks, by bytes):")?;
            for &(i, bytes) in &top[..n] {
                w.write_str(" ")?;
                write_site_id(w, i)?;
                write!(
                    w,
                    " {} allocs {:.1} MiB;",
                    sites::TABLE[i].count.load(Relaxed),
                    bytes as f64 / (1 << 20) as f64
                )?;
            }
            return w.write_str("\n");
        }
        // The sites mode: every C-ABI block; each site by its return address, placed by
        // the loader's own table (`dladdr`: the module and the nearest exported symbol;
        // `hakprof sites` resolves static functions and source lines after the run).
        w.write_str("  top sites (all blocks, by bytes; hakprof sites symbolizes them):\n")?;
        for &(i, bytes) in &top[..n] {
            let e = &sites::TABLE[i];
            write!(
                w,
                "    {:>10} allocs {:>10.1} MiB, {:>10.1} MiB live at exit  ",
                e.count.load(Relaxed),
                bytes as f64 / (1 << 20) as f64,
                e.live.load(Relaxed) as f64 / (1 << 20) as f64
            )?;
            write_site_place(w, i)?;
            w.write_str("\n")?;
        }
        Ok(())
    }
}

/// The parts of a report that could not be read: their locks stayed held past
/// `learn::REPORT_WAIT_NS` (a report written from `_exit` in a signal handler, whose
/// interrupted thread held them). Listed in the JSON's `partial`.
#[derive(Default)]
struct Partial {
    elo: bool,
    ucb1_sites: u32,
}

impl Partial {
    fn write_json(&self, w: &mut impl Write) -> fmt::Result {
        w.write_str(",\"partial\":[")?;
        let mut sep = "";
        if self.elo {
            w.write_str("\"elo\"")?;
            sep = ",";
        }
        if self.ucb1_sites > 0 {
            write!(w, "{sep}\"ucb1\"")?;
        }
        w.write_str("]")
    }
}

fn write_elo(w: &mut impl Write, partial: &mut Partial) -> fmt::Result {
    let Some(e) = learn::elo_snapshot() else {
        partial.elo = true;
        return w.write_str("\"elo\":null,");
    };
    write!(w, "\"elo\":[")?;
    for (i, s) in e.strategies.iter().enumerate() {
        if i > 0 {
            w.write_str(",")?;
        }
        write!(
            w,
            "{{\"threshold\":{},\"rating\":{:.2},\"wins\":{},\"losses\":{},\"draws\":{},\"samples\":{},\"active\":{}}}",
            s.threshold, s.rating, s.wins, s.losses, s.draws, s.samples, s.active
        )?;
    }
    write!(w, "],")
}

fn write_ucb1(w: &mut impl Write, partial: &mut Partial) -> fmt::Result {
    write!(w, "\"ucb1\":{{\"arms\":[")?;
    for (i, a) in ucb1::ARMS.iter().enumerate() {
        write!(w, "{}{a}", if i > 0 { "," } else { "" })?;
    }
    write!(w, "],\"sites\":[")?;
    let mut first = true;
    for i in 0..=sites::SITES {
        if let Some(u) = learn::ucb1_snapshot(i) {
            let Some(u) = u else {
                partial.ucb1_sites += 1;
                continue;
            };
            let id = sites::TABLE[i].site().map_or(0, |s| s.0);
            write!(
                w,
                "{}{{\"site\":{id},\"adopted\":{},\"adoptions\":{},\"pulls\":[",
                if first { "" } else { "," },
                ucb1::ARMS[u.adopted],
                u.adoptions
            )?;
            for (k, p) in u.pulls.iter().enumerate() {
                write!(w, "{}{p}", if k > 0 { "," } else { "" })?;
            }
            write!(w, "]}}")?;
            first = false;
        }
    }
    write!(w, "]}},")
}

/// The site table; in the sites mode also each site's stack, size buckets, temporary
/// allocations and bytes live at the heap's peak.
fn write_sites(w: &mut impl Write, sites_mode: bool) -> fmt::Result {
    write!(w, "\"sites\":[")?;
    let mut first = true;
    for (i, e) in sites::TABLE.iter().enumerate() {
        let count = e.count.load(Relaxed);
        if count == 0 {
            continue;
        }
        w.write_str(if first { "{\"site\":" } else { ",{\"site\":" })?;
        if i == sites::OTHER {
            w.write_str("\"other\"")?;
        } else {
            write!(w, "{}", e.site().map_or(0, |s| s.0))?;
        }
        write!(
            w,
            ",\"addr\":{},\"count\":{count},\"bytes\":{},\"live_bytes\":{},\"peak_live_bytes\":{},\"threshold\":{},\"bigcache_hits\":{},\"hist\":[",
            sites::ADDR[i].load(Relaxed),
            e.bytes.load(Relaxed),
            e.live.load(Relaxed),
            sites::PEAK[i].load(Relaxed),
            e.threshold.load(Relaxed),
            e.hits.load(Relaxed)
        )?;
        write_list(w, e.hist.iter().map(|h| h.load(Relaxed)))?;
        if sites_mode {
            write!(
                w,
                ",\"temporary\":{},\"temporary_process\":{},\"live_at_peak\":{},\"sizes\":[",
                sites::TEMPORARY[i].load(Relaxed),
                sites::TEMPORARY_PROCESS[i].load(Relaxed),
                sites::LIVE_AT_PEAK[i].load(Relaxed)
            )?;
            write_list(w, sites::SIZES[i].iter().map(|h| h.load(Relaxed)))?;
            w.write_str(",\"stack\":[")?;
            let stack = sites::STACKS[i].iter().map(|f| f.load(Relaxed));
            write_list(w, stack.take_while(|&f| f != 0))?;
            if let Some(at) = sites::location(i) {
                w.write_str(",\"location\":{\"file\":\"")?;
                write_json_text(w, at.file())?;
                write!(w, "\",\"line\":{},\"column\":{}}}", at.line(), at.column())?;
            }
        }
        w.write_str("}")?;
        first = false;
    }
    write!(w, "]")
}

/// Whether `HAKMEM_FOOTPRINT=1` asks for the footprint in the JSON report (and its peak to
/// be watched: `init`).
pub fn footprint_wanted() -> bool {
    config::getenv("HAKMEM_FOOTPRINT").is_some_and(|v| v == "1")
}

/// `,"<key>":{…}`: resident bytes by holder (`footprint::Footprint`).
fn write_footprint(w: &mut impl Write, key: &str, f: &crate::footprint::Footprint) -> fmt::Result {
    write!(
        w,
        ",\"{key}\":{{\"process_rss\":{},\"statics\":{},\"site_table\":{},\"stack_table\":{},\"segment_map\":{},\"segments\":{},\"segment_headers\":{},\"segment_pages\":{},\"heaps\":{},\"heap_bytes\":{},\"big_live\":{},\"big_cached\":{},\"registry\":{},\"registry_busy\":{}}}",
        f.process_rss,
        f.statics,
        f.site_table,
        f.stack_table,
        f.segment_map,
        f.segments,
        f.segment_headers,
        f.segment_pages,
        f.heaps,
        f.heap_bytes,
        f.big_live,
        f.big_cached,
        f.registry,
        f.registry_busy
    )
}

/// `a,b,c]`: the rest of a JSON list of numbers.
fn write_list(w: &mut impl Write, items: impl Iterator<Item = impl fmt::Display>) -> fmt::Result {
    for (k, x) in items.enumerate() {
        write!(w, "{}{x}", if k > 0 { "," } else { "" })?;
    }
    w.write_str("]")
}

/// `,"sites_mode":true,"maps":"…"`: the process's mappings (`/proc/self/maps`, as text),
/// so that `hakprof sites` can place each site's return address in its module.
fn write_maps(w: &mut impl Write) -> fmt::Result {
    w.write_str(",\"sites_mode\":true,\"other_sites\":")?;
    write!(w, "{}", sites::TABLE[sites::OTHER].count.load(Relaxed))?;
    write!(
        w,
        ",\"heap_peak_bytes\":{},\"heap_snapshot_bytes\":{}",
        sites::heap_peak(),
        sites::heap_snapshot()
    )?;
    write!(
        w,
        ",\"stack_samples\":{{\"interval\":{},\"fx\":{},\"dropped\":{},\"stacks\":[",
        config::get().sample_bytes,
        stacks::FX,
        stacks::DROPPED.load(Relaxed)
    )?;
    let mut first = true;
    let mut result = Ok(());
    stacks::for_each(|e| {
        let sep = if first { "" } else { "," };
        first = false;
        result = result.and_then(|()| {
            write!(
                w,
                "{sep}{{\"samples\":{},\"allocs_fx\":{},\"bytes\":{},\"live_fx\":{},\"live_bytes\":{},\"at_peak_bytes\":{},\"temporary_fx\":{},\"frames\":[",
                e.samples.load(Relaxed),
                e.allocs.load(Relaxed),
                e.bytes.load(Relaxed),
                e.live.load(Relaxed),
                e.live_bytes.load(Relaxed),
                e.at_peak.load(Relaxed),
                e.temporary.load(Relaxed)
            )?;
            let frames = e.frames.iter().map(|f| f.load(Relaxed));
            write_list(w, frames.take_while(|&f| f != 0))?;
            w.write_str("}")
        });
    });
    result?;
    w.write_str("]}")?;
    w.write_str(",\"maps\":\"")?;
    // SAFETY: the path is NUL-terminated; each read fills at most the buffer.
    unsafe {
        let fd = libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            let mut buf = [0u8; 4096];
            loop {
                let n = libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len());
                if n <= 0 {
                    break;
                }
                for &b in &buf[..n as usize] {
                    match b {
                        b'\n' => w.write_str("\\n")?,
                        b'"' | b'\\' => w.write_char('?')?,
                        0x20..=0x7e => w.write_char(b as char)?,
                        _ => w.write_char('?')?,
                    }
                }
            }
            libc::close(fd);
        }
    }
    w.write_str("\"")
}

/// The process these counters belong to: set at the allocator's set-up and in each fork
/// child (`init`; 0 before any allocation). A process with another pid that runs this code
/// shares the owner's memory without being it: a `vfork` child (or another
/// `clone(CLONE_VM)` child), which must not write the owner's report as its own.
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
/// The process that wrote its report: once per process (`_exit` in the sites mode reports
/// too, and a process may reach both it and the exit destructors). Keyed by pid, not a
/// flag: a flag set by a `vfork` child would be the parent's too.
static REPORTED_PID: AtomicI32 = AtomicI32::new(0);

/// This process owns the counters (at the allocator's set-up, and in a fork child).
pub fn note_owner() {
    // SAFETY: getpid has no preconditions.
    OWNER_PID.store(unsafe { libc::getpid() }, Relaxed);
}

/// Whether this process should write the exit report now: it owns the counters (not a
/// `vfork` child) and has not written it yet.
fn claim_report() -> bool {
    // SAFETY: getpid has no preconditions (a system call: glibc caches no pid).
    let pid = unsafe { libc::getpid() };
    let owner = OWNER_PID.load(Relaxed);
    if owner != 0 && owner != pid {
        return false;
    }
    REPORTED_PID.swap(pid, Relaxed) != pid
}

/// Writes the exit report(s) `HAKMEM_STATS` and `HAKMEM_STATS_JSON` ask for, once per
/// process. Safe to run from `_exit` inside a signal handler: it takes no lock that an
/// interrupted thread may hold without giving up on it (the learner's ELO and UCB1 state,
/// which the JSON then lists as `partial`), and makes only async-signal-safe calls
/// (system calls; `dladdr` in the sites mode, whose loader lock is recursive).
pub fn report_at_exit() {
    report(false);
}

/// `report_at_exit` from `_exit`: only in a process whose allocator was set up (before it,
/// nothing was counted, and the caller may be a `vfork` child of a process that never
/// allocated, which cannot tell itself from its parent).
pub fn report_from_exit() {
    report(true);
}

fn report(owned_only: bool) {
    if owned_only && OWNER_PID.load(Relaxed) == 0 {
        return;
    }
    let human = config::getenv("HAKMEM_STATS");
    let path = config::getenv("HAKMEM_STATS_JSON");
    if (human.is_none() && path.is_none()) || !claim_report() {
        return;
    }
    write_report(human, path);
}

/// The report itself, out of line: its buffers take a few pages of stack, which a process
/// that asked for no report (most of them, at every exit) should not fault in.
#[cold]
#[inline(never)]
fn write_report(human: Option<&str>, path: Option<&str>) {
    let snap = snapshot();
    let p = process();
    if human.is_some_and(|v| stats_wanted(v, p.comm(), p.exe())) {
        let mut b = StackBuf::<2048>::new();
        let _ = snap.write_human(&mut b, &p);
        let fd = match REPORT_FD.load(Relaxed) {
            0 => 2,
            fd => fd,
        };
        diag::write_fd(fd, b.as_bytes());
    }
    if let Some(path) = path {
        write_json_file(path.as_bytes(), &snap);
    }
}

/// The signal that is ending the process (0: none): the report written from the crash
/// handler says so, as its counts stop there.
static ENDED_BY_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The report from a fatal signal's handler (the sites mode, `init`): written as at exit,
/// taking no lock it could wait on, and marked with the signal.
pub fn report_on_signal(sig: i32) {
    ENDED_BY_SIGNAL.store(sig, Relaxed);
    report(true);
}

/// `path` with each `%p` replaced by the process id, then `suffix`, NUL-terminated (None
/// when it does not fit).
fn stats_path(path: &[u8], suffix: &str) -> Option<StackBuf<4096>> {
    let mut p = StackBuf::<4096>::new();
    let mut rest = path;
    while let Some(i) = rest.windows(2).position(|w| w == b"%p") {
        let _ = p.write_str(core::str::from_utf8(&rest[..i]).unwrap_or(""));
        // SAFETY: getpid has no preconditions.
        let _ = write!(p, "{}", unsafe { libc::getpid() });
        rest = &rest[i + 2..];
    }
    let _ = p.write_str(core::str::from_utf8(rest).unwrap_or(""));
    let _ = p.write_str(suffix);
    let _ = p.write_str("\0");
    (!p.truncated()).then_some(p)
}

/// Writes `bytes` to the NUL-terminated `path` (created or truncated).
fn write_file(path: &StackBuf<4096>, bytes: &[u8]) -> bool {
    // SAFETY: `path` holds a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_bytes().as_ptr() as *const libc::c_char,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        return false;
    }
    let ok = diag::write_fd(fd, bytes);
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    ok
}

/// In the sites mode, at the allocator's set-up in each process (and in each fork child):
/// `HAKMEM_STATS_JSON`'s path + `.started`, holding the process's name and executable, so
/// that `hakprof sites` can name the processes that started and wrote no report (killed
/// by `SIGKILL`, or by a signal whose handler never returned).
pub fn note_start() {
    let Some(path) = config::getenv("HAKMEM_STATS_JSON") else {
        return;
    };
    let Some(file) = stats_path(path.as_bytes(), ".started") else {
        return;
    };
    let p = process();
    let mut text = StackBuf::<256>::new();
    let _ = write!(text, "{}\n{}\n", p.comm(), p.exe());
    write_file(&file, text.as_bytes());
}

/// Writes the snapshot as JSON to `path` (with `%p` replaced by the process id).
pub fn write_json_file(path: &[u8], snap: &Snapshot) -> bool {
    let Some(p) = stats_path(path, "") else {
        return false;
    };
    let mut json = MapBuf::new(1 << 20);
    let _ = snap.write_json(&mut json);
    let _ = json.write_str("\n");
    let ok = write_file(&p, json.as_bytes());
    if !ok {
        diag::eprint_line(format_args!("hakmem: cannot write HAKMEM_STATS_JSON file"));
    }
    ok
}

/// The snapshot as a JSON string (for Rust callers: tests, benches, the profiler).
pub fn json() -> String {
    let mut s = String::new();
    let _ = snapshot().write_json(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_written_and_never_round_up_to_the_next_unit() {
        let show = |n: i64| {
            let mut s = String::new();
            write_size(&mut s, n).unwrap();
            s
        };
        assert_eq!(show(20_000), "20000 B");
        assert_eq!(show(-512), "-512 B");
        assert_eq!(show(1_048_572), "1023.9 KiB");
        assert_eq!(show(1 << 20), "1.0 MiB");
        assert_eq!(show(3 << 29), "1.5 GiB");
    }

    #[test]
    fn hakmem_stats_selects_processes_by_name() {
        for v in ["1", "2", " 1 "] {
            assert!(stats_wanted(v, "sh", "dash"), "{v:?} means every process");
        }
        for v in ["0", "", " "] {
            assert!(!stats_wanted(v, "sh", "dash"), "{v:?} means none");
        }
        assert!(stats_wanted("python3", "python3", "python3.11"));
        assert!(
            stats_wanted("python3.11", "python3", "python3.11"),
            "the executable's name"
        );
        assert!(!stats_wanted("python3", "bash", "bash"));
        assert!(
            stats_wanted("git, python3", "python3", "python3.11"),
            "a list"
        );
        assert!(
            !stats_wanted("pyth", "python3", "python3.11"),
            "whole names only"
        );
    }

    /// `_exit` from a signal handler that interrupted a thread inside the learner (holding
    /// its lifecycle, ELO and UCB1 locks): the report must still be written, promptly,
    /// saying which parts it could not read. (Before, it waited for those locks forever.)
    #[test]
    fn the_report_never_waits_for_a_lock_its_own_thread_holds() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (human, json) = learn::with_learner_locks_held(|| {
                let p = process();
                let mut human = String::new();
                snapshot().write_human(&mut human, &p).unwrap();
                let mut json = String::new();
                snapshot().write_json(&mut json).unwrap();
                (human, json)
            });
            tx.send((human, json)).unwrap();
        });
        let (human, json) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the report hung on a lock its own thread holds");
        assert!(human.contains("  pool     : "), "{human}");
        let v: serde_json::Value = serde_json::from_str(&json).expect(&json);
        assert!(v["elo"].is_null(), "{json}");
        assert_eq!(v["partial"], serde_json::json!(["elo", "ucb1"]), "{json}");
        // Without the locks held, nothing is partial.
        let v: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert_eq!(v["partial"], serde_json::json!([]));
    }

    #[test]
    fn the_report_names_this_process_and_stays_valid_json() {
        let p = process();
        assert_eq!(p.pid, std::process::id() as i32);
        assert!(!p.comm().is_empty() && !p.exe().is_empty());
        assert!(p.peak_rss_kib > 0);
        assert!(
            p.elapsed_ns > 0 && p.elapsed_ns < 3_600_000_000_000,
            "{}",
            p.elapsed_ns
        );
        let mut human = String::new();
        snapshot().write_human(&mut human, &p).unwrap();
        let first = human.lines().next().unwrap();
        assert!(
            first.contains(&format!("for {} (pid {}", p.comm(), p.pid)),
            "{first}"
        );
        let json = super::json();
        assert!(json.contains(&format!("\"pid\":{}", p.pid)), "{json}");
        let mut text = String::new();
        write_json_text(&mut text, "a\"b\\c\n").unwrap();
        assert_eq!(text, "a?b?c?");
    }
}
