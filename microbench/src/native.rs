//! Allocators through the C ABI, as programs meet them: one process per allocator, chosen
//! with `LD_PRELOAD` (glibc: no preload). The C-path probes (`cabi`) and the program
//! benchmarks (`programs`) run their C programs through this module, which builds them,
//! runs them with their resource usage, and proves which allocator served each run (every
//! C program of the suite prints `served_by=<library>`; see `microbench/c/served.h`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An allocator under test: its name and the library preloaded for it (None: glibc's).
#[derive(Clone, Debug)]
pub struct Allocator {
    pub name: &'static str,
    pub lib: Option<PathBuf>,
}

impl Allocator {
    /// The file that must define the bound `malloc` (a substring of `served_by`).
    pub fn expected_library(&self) -> String {
        match &self.lib {
            Some(l) => l.file_name().unwrap().to_string_lossy().into_owned(),
            None => "libc.so.6".into(),
        }
    }
}

/// The peers' Debian packages and their libraries (`make peer-libs` installs them).
pub const PEER_LIBS: [(&str, &str, &str); 3] = [
    ("mimalloc", "libmimalloc2.0", "libmimalloc.so.2"),
    ("jemalloc", "libjemalloc2", "libjemalloc.so.2"),
    (
        "tcmalloc",
        "libtcmalloc-minimal4",
        "libtcmalloc_minimal.so.4",
    ),
];

const LIB_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

/// The repository root (the workspace), for the C sources and `target/`.
pub fn root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root) // callgrind names objects by their real path
}

/// hakmem's `libhakmem.so` (built by `make preload`).
pub fn hakmem() -> Result<Allocator, String> {
    let lib = root().join("target/preload/libhakmem.so");
    if !lib.exists() {
        return Err(format!("{} is missing: run make preload", lib.display()));
    }
    Ok(Allocator {
        name: "hakmem",
        lib: Some(lib),
    })
}

/// hakmem, then glibc, mimalloc, jemalloc and tcmalloc. A missing library is an error that
/// names its package.
pub fn allocators() -> Result<Vec<Allocator>, String> {
    let mut all = vec![
        hakmem()?,
        Allocator {
            name: "glibc",
            lib: None,
        },
    ];
    for (name, package, file) in PEER_LIBS {
        let lib = find_lib(file)
            .ok_or_else(|| format!("{file} not found: install {package} (make peer-libs)"))?;
        all.push(Allocator {
            name,
            lib: Some(lib),
        });
    }
    Ok(all)
}

/// The library `file` in the system's library folders.
pub fn find_lib(file: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.exists())
}

/// Compiles the C (or, for `.cpp`, C++) program `src` (under `microbench/c/`) to
/// `target/native/<name>` with the flags every program of the suite uses; returns the binary.
pub fn build(src: &str) -> Result<PathBuf, String> {
    let source = root().join("microbench/c").join(src);
    let (stem, compiler) = match src.strip_suffix(".cpp") {
        Some(stem) => (stem, "c++"),
        None => (src.trim_end_matches(".c"), "cc"),
    };
    let out = root().join("target/native").join(stem);
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    let status = Command::new(compiler)
        .args(["-O2", "-fno-builtin", "-pthread", "-o"])
        .arg(&out)
        .arg(&source)
        .args(["-ldl", "-lm"])
        .status()
        .map_err(|e| {
            format!("cannot run {compiler}: {e} (make test-tools installs gcc and g++)")
        })?;
    if !status.success() {
        return Err(format!("{compiler} failed on {}", source.display()));
    }
    Ok(out)
}

/// A command that runs `program` under `alloc`.
pub fn command(alloc: &Allocator, program: &Path) -> Command {
    let mut c = Command::new(program);
    match &alloc.lib {
        Some(lib) => c.env("LD_PRELOAD", lib),
        None => c.env_remove("LD_PRELOAD"),
    };
    c
}

/// Checks the `served_by=` line a program printed on stderr against `alloc`.
pub fn check_served(alloc: &Allocator, stderr: &str) -> Result<(), String> {
    let served = stderr
        .lines()
        .find_map(|l| l.strip_prefix("served_by="))
        .ok_or_else(|| format!("{}: the program printed no served_by line", alloc.name))?;
    if !served.contains(&alloc.expected_library()) {
        return Err(format!(
            "{}: malloc was served by {served}, not {}: the measurement would be wrong",
            alloc.name,
            alloc.expected_library()
        ));
    }
    Ok(())
}

/// hakmem's stats JSON of the run whose `pid=` line is in `stderr` (`<dir>/<prefix>-<pid>.json`,
/// as `HAKMEM_STATS_JSON=<dir>/<prefix>-%p.json` names it), read and removed; an error when
/// it is missing or counts no allocation (hakmem did not serve the program).
pub fn hakmem_stats(dir: &Path, prefix: &str, stderr: &str) -> Result<serde_json::Value, String> {
    let pid = stderr
        .lines()
        .find_map(|l| l.strip_prefix("pid="))
        .ok_or("the program printed no pid line")?;
    let path = dir.join(format!("{prefix}-{pid}.json"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no hakmem stats at {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let allocs =
        v["pool"]["allocs"].as_u64().unwrap_or(0) + v["big"]["allocs"].as_u64().unwrap_or(0);
    if allocs == 0 {
        return Err(format!("{}: hakmem counted no allocation", path.display()));
    }
    Ok(v)
}

/// One finished run: output, wall time, and the kernel's resource usage of the child.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// Peak resident set (`ru_maxrss`, KiB). A child started by this process counts the
    /// parent's image it was forked from (hence `/usr/bin/time` for the program table).
    pub max_rss_kib: u64,
    pub cpu: Duration,
}

/// Runs `cmd` to its end and collects its usage with `wait4` (the source of
/// `/usr/bin/time`'s figures). A non-zero exit is an error carrying its stderr.
pub fn run(mut cmd: Command) -> Result<Run, String> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{cmd:?}: {e}"))?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let (status, usage) = wait4(child.id() as libc::pid_t)?;
    let wall = start.elapsed();
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!(
            "{cmd:?} failed (wait status {status}): {}",
            stderr.trim()
        ));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Run {
        stdout,
        stderr,
        wall,
        max_rss_kib: usage.ru_maxrss as u64,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
    })
}

fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unwaited child; both pointers are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
        }
    }
}

/// Median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_check_refuses_the_wrong_library_and_a_missing_line() {
        let jem = Allocator {
            name: "jemalloc",
            lib: Some("/usr/lib/libjemalloc.so.2".into()),
        };
        let glibc = Allocator {
            name: "glibc",
            lib: None,
        };
        assert!(check_served(&jem, "x\nserved_by=/usr/lib/libjemalloc.so.2\n").is_ok());
        let e = check_served(&jem, "served_by=/lib/x86_64-linux-gnu/libc.so.6").unwrap_err();
        assert!(e.contains("not libjemalloc.so.2"), "{e}");
        assert!(check_served(&glibc, "served_by=/lib/x86_64-linux-gnu/libc.so.6").is_ok());
        assert!(check_served(&glibc, "nothing").is_err());
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
