//! What the allocator did, for people and for benchmarks: `HAKMEM_STATS=1` prints a short
//! report on stderr at exit, `HAKMEM_STATS_JSON=<path>` writes the same as JSON (`%p` in
//! the path becomes the process id, for programs that fork). This is how a run confirms
//! that hakmem really served it. Nothing here allocates.

use crate::big::{self, cache};
use crate::config::{self, Config};
use crate::diag::{self, MapBuf, StackBuf};
use crate::learn::{self, lifecycle::Phase, sites, ucb1};
use core::fmt::{self, Write};
use core::sync::atomic::Ordering::Relaxed;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
        let s = &self.syscalls;
        let c = &self.config;
        write!(w, "{{\"allocator\":\"hakmem\",\"version\":\"{VERSION}\",")?;
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
            "\"syscalls\":{{\"mmap\":{},\"munmap\":{},\"madvise\":{},\"mremap\":{}}},",
            s.mmap, s.munmap, s.madvise, s.mremap
        )?;
        write!(
            w,
            "\"pool\":{{\"allocs\":{},\"frees\":{},\"remote_frees\":{},\"heaps\":{}}},",
            self.pool.allocs, self.pool.frees, self.pool.remote_frees, self.pool.heaps
        )?;
        write!(
            w,
            "\"big\":{{\"allocs\":{},\"frees\":{},\"splits\":{}}},",
            self.big.allocs, self.big.frees, self.big.splits
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
        write_elo(w)?;
        write_ucb1(w)?;
        write_sites(w)?;
        write!(w, "}}")
    }

    pub fn write_human(&self, w: &mut impl Write) -> fmt::Result {
        let s = &self.syscalls;
        let c = &self.config;
        writeln!(
            w,
            "hakmem {VERSION} stats (mode {}, front {})",
            c.mode.name(),
            c.front.name()
        )?;
        writeln!(
            w,
            "  pool     : {} allocs, {} frees ({} remote), {} heaps",
            self.pool.allocs, self.pool.frees, self.pool.remote_frees, self.pool.heaps
        )?;
        writeln!(
            w,
            "  big      : {} allocs, {} frees, {} cached blocks split",
            self.big.allocs, self.big.frees, self.big.splits
        )?;
        writeln!(
            w,
            "  bigcache : {} hits, {} misses ({:.1} % hit), {} evictions",
            self.bigcache.hits,
            self.bigcache.misses,
            100.0 * self.bigcache_hit_rate(),
            self.bigcache.evictions
        )?;
        writeln!(
            w,
            "  learner  : {} (lifecycle {}, {} windows), {} madvise batches",
            if c.elo {
                "ELO"
            } else {
                "off, fixed 2 MiB threshold"
            },
            self.phase.name(),
            self.lifecycle_windows,
            self.madvise_batches
        )?;
        writeln!(
            w,
            "  sys      : {} mmap, {} munmap, {} madvise, {} mremap",
            s.mmap, s.munmap, s.madvise, s.mremap
        )
    }
}

fn write_elo(w: &mut impl Write) -> fmt::Result {
    let e = learn::elo_snapshot();
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

fn write_ucb1(w: &mut impl Write) -> fmt::Result {
    write!(w, "\"ucb1\":{{\"arms\":[")?;
    for (i, a) in ucb1::ARMS.iter().enumerate() {
        write!(w, "{}{a}", if i > 0 { "," } else { "" })?;
    }
    write!(w, "],\"sites\":[")?;
    let mut first = true;
    for i in 0..=sites::SITES {
        if let Some(u) = learn::ucb1_snapshot(i) {
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

fn write_sites(w: &mut impl Write) -> fmt::Result {
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
            ",\"count\":{count},\"bytes\":{},\"live_bytes\":{},\"threshold\":{},\"bigcache_hits\":{},\"hist\":[",
            e.bytes.load(Relaxed),
            e.live.load(Relaxed),
            e.threshold.load(Relaxed),
            e.hits.load(Relaxed)
        )?;
        for (k, h) in e.hist.iter().enumerate() {
            write!(w, "{}{}", if k > 0 { "," } else { "" }, h.load(Relaxed))?;
        }
        write!(w, "]}}")?;
        first = false;
    }
    write!(w, "]")
}

pub fn report_at_exit() {
    let want_human = config::getenv("HAKMEM_STATS").is_some_and(|v| !v.is_empty() && v != "0");
    let path = config::getenv("HAKMEM_STATS_JSON");
    if !want_human && path.is_none() {
        return;
    }
    let snap = snapshot();
    if want_human {
        let mut b = StackBuf::<1024>::new();
        let _ = snap.write_human(&mut b);
        diag::write_fd(2, b.as_bytes());
    }
    if let Some(path) = path {
        write_json_file(path.as_bytes(), &snap);
    }
}

/// Writes the snapshot as JSON to `path` (with `%p` replaced by the process id).
pub fn write_json_file(path: &[u8], snap: &Snapshot) -> bool {
    let mut p = StackBuf::<4096>::new();
    let mut rest = path;
    while let Some(i) = rest.windows(2).position(|w| w == b"%p") {
        let _ = p.write_str(core::str::from_utf8(&rest[..i]).unwrap_or(""));
        // SAFETY: getpid has no preconditions.
        let _ = write!(p, "{}", unsafe { libc::getpid() });
        rest = &rest[i + 2..];
    }
    let _ = p.write_str(core::str::from_utf8(rest).unwrap_or(""));
    let _ = p.write_str("\0");
    if p.truncated() {
        return false;
    }
    let mut json = MapBuf::new(1 << 20);
    let _ = snap.write_json(&mut json);
    let _ = json.write_str("\n");
    // SAFETY: `p` holds a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            p.as_bytes().as_ptr() as *const libc::c_char,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 {
        diag::eprint_line(format_args!("hakmem: cannot write HAKMEM_STATS_JSON file"));
        return false;
    }
    let ok = diag::write_fd(fd, json.as_bytes());
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    ok
}

/// The snapshot as a JSON string (for Rust callers: tests, benches, the profiler).
pub fn json() -> String {
    let mut s = String::new();
    let _ = snapshot().write_json(&mut s);
    s
}
