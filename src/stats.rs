//! What the allocator did, for people and for benchmarks: `HAKMEM_STATS=1` prints a short
//! report on stderr at exit, `HAKMEM_STATS_JSON=<path>` writes the same as JSON (`%p` in
//! the path becomes the process id, for programs that fork). This is how a run confirms
//! that hakmem really served it. Nothing here allocates.

use crate::diag::{self, StackBuf};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every counter, summed over threads.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub syscalls: crate::os::SyscallCounts,
    pub pool: crate::pool::heap::PoolTotals,
    pub big: crate::big::BigTotals,
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        syscalls: crate::os::syscall_counts(),
        pool: crate::pool::heap::totals(),
        big: crate::big::totals(),
    }
}

impl Snapshot {
    /// Allocations hakmem served (pool and big).
    pub fn allocations(&self) -> u64 {
        self.pool.allocs + self.big.allocs
    }

    pub fn write_json(&self, w: &mut impl Write) -> fmt::Result {
        let s = &self.syscalls;
        write!(w, "{{\"allocator\":\"hakmem\",\"version\":\"{VERSION}\",")?;
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
            "\"big\":{{\"allocs\":{},\"frees\":{}}}}}",
            self.big.allocs, self.big.frees
        )
    }

    pub fn write_human(&self, w: &mut impl Write) -> fmt::Result {
        let s = &self.syscalls;
        writeln!(w, "hakmem {VERSION} stats")?;
        writeln!(
            w,
            "  pool : {} allocs, {} frees ({} remote), {} heaps",
            self.pool.allocs, self.pool.frees, self.pool.remote_frees, self.pool.heaps
        )?;
        writeln!(
            w,
            "  big  : {} allocs, {} frees",
            self.big.allocs, self.big.frees
        )?;
        writeln!(
            w,
            "  sys  : {} mmap, {} munmap, {} madvise, {} mremap",
            s.mmap, s.munmap, s.madvise, s.mremap
        )
    }
}

static HUMAN: AtomicBool = AtomicBool::new(false);

/// Reads the stats switches (called once at start-up, and again at exit for processes
/// in which hakmem never initialised).
pub fn read_env() {
    // SAFETY: the name is a NUL-terminated literal; getenv does not allocate.
    let v = unsafe { libc::getenv(c"HAKMEM_STATS".as_ptr()) };
    // SAFETY: a non-null getenv result is a NUL-terminated string.
    let on = !v.is_null() && unsafe { *v } != 0 && unsafe { *v } != b'0' as libc::c_char;
    HUMAN.store(on, Relaxed);
}

pub fn report_at_exit() {
    read_env();
    let snap = snapshot();
    if HUMAN.load(Relaxed) {
        let mut b = StackBuf::<1024>::new();
        let _ = snap.write_human(&mut b);
        diag::write_fd(2, b.as_bytes());
    }
    // SAFETY: as in `read_env`.
    let path = unsafe { libc::getenv(c"HAKMEM_STATS_JSON".as_ptr()) };
    if !path.is_null() {
        // SAFETY: a non-null getenv result is a NUL-terminated string.
        let path = unsafe { core::ffi::CStr::from_ptr(path) };
        write_json_file(path.to_bytes(), &snap);
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
    let mut json = StackBuf::<16384>::new();
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
