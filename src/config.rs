//! Layer 1: modes and kill switches, read once from the environment at start-up.
//!
//! | mode | ELO | UCB1 | BigCache | batch madvise | lifecycle | ELO selection |
//! |---|---|---|---|---|---|---|
//! | minimal | off (fixed 2 MiB) | off | off | off | off | – |
//! | fast | off (fixed 2 MiB) | off | on | off | off | – |
//! | balanced (default) | on | off | on | on | on | 1 call in 100 |
//! | learning | on | on | on | on | on | 1 call in 100 |
//! | research | on | on | on | on | on | 1 call in 10 |
//!
//! Switches applied after the mode: `HAKMEM_DISABLE_BIGCACHE=1`, `HAKMEM_DISABLE_ELO=1`
//! (fixed 2 MiB threshold, UCB1 off too), `HAKMEM_MINIMAL=1` (both), `HAKMEM_THRESHOLD_KB=<n>`
//! (the learners off, the threshold fixed at n KiB: the fixed policies the learner is
//! measured against). `HAKMEM_FRONT` picks
//! the front end, `HAKMEM_SEED` the learners' seed, `HAKMEM_BIGCACHE_MB` the BigCache's cap,
//! `HAKMEM_CHECK=1` the checked mode (every free validated), `HAKMEM_SITES=1` the sites
//! mode (every C-ABI allocation counted per call site; the `reuse` front), `HAKMEM_THP`
//! transparent huge pages for big blocks (`0`, the default: none; `site`: per site, off
//! for the sites found writing their blocks sparsely; `1`: every big block of 2 MiB and
//! more).
//! Nothing here allocates: an unknown value prints one warning line and the default holds.

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Minimal,
    Fast,
    Balanced,
    Learning,
    Research,
}

impl Mode {
    pub const NAMES: &'static str = "minimal|fast|balanced|learning|research";
    pub fn name(self) -> &'static str {
        match self {
            Mode::Minimal => "minimal",
            Mode::Fast => "fast",
            Mode::Balanced => "balanced",
            Mode::Learning => "learning",
            Mode::Research => "research",
        }
    }
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "minimal" => Mode::Minimal,
            "fast" => Mode::Fast,
            "balanced" => Mode::Balanced,
            "learning" => Mode::Learning,
            "research" => Mode::Research,
            _ => return None,
        })
    }
}

/// Whether a fresh big block of at least one huge page (2 MiB) is mapped 2 MiB-aligned with
/// `MADV_HUGEPAGE`, so that the kernel's transparent huge pages (`always` or `madvise`)
/// back it: one fault per 2 MiB instead of 512, at the price of whole 2 MiB frames for a
/// block written only in part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugePages {
    /// Never (`HAKMEM_THP=0`, the default). On this project's VM a huge page's first fault
    /// costs 1–4 ms whenever the host has not backed that memory yet (right after another
    /// program freed its pages): 200 blocks of 2 MiB took 0.3–0.7 s with huge pages against
    /// 0.17 s without, alternated with glibc runs, though 0.03 s when run back to back.
    Off,
    /// Per site (`HAKMEM_THP=site`): presumed dense, until a probe chunk of the site,
    /// measured with `mincore`, shows it writes its blocks only in part
    /// (`learn::sites::dense`).
    PerSite,
    /// Every big block that spans a huge page (`HAKMEM_THP=1`).
    On,
}

impl HugePages {
    pub const NAMES: &'static str = "0|1|site";
    fn parse(s: &str) -> Option<HugePages> {
        Some(match s {
            "0" | "off" => HugePages::Off,
            "1" | "on" => HugePages::On,
            "site" => HugePages::PerSite,
            _ => return None,
        })
    }
}

/// Which front end serves the C ABI and `Hakmem`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Front {
    /// Pool for small and medium sizes; big blocks through the learned threshold and BigCache.
    Auto = 1,
    /// The pool model alone: big blocks mapped and unmapped plainly.
    Pool = 2,
    /// The hakmem model for every size: site, BigCache, learner, header.
    Reuse = 3,
}

impl Front {
    pub const NAMES: &'static str = "auto|pool|reuse";
    pub fn name(self) -> &'static str {
        match self {
            Front::Auto => "auto",
            Front::Pool => "pool",
            Front::Reuse => "reuse",
        }
    }
    fn parse(s: &str) -> Option<Front> {
        Some(match s {
            "auto" => Front::Auto,
            "pool" => Front::Pool,
            "reuse" => Front::Reuse,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub front: Front,
    pub elo: bool,
    pub ucb1: bool,
    pub bigcache: bool,
    pub batch_madvise: bool,
    pub lifecycle: bool,
    /// The learner picks a threshold on 1 call in this many and keeps it in between (a
    /// choice must hold for a while: a threshold's cost shows on the *next* allocations,
    /// whose blocks it kept or released).
    pub select_every: u32,
    /// Bytes the BigCache may hold in all (`HAKMEM_BIGCACHE_MB`); a site may hold 3/4.
    pub bigcache_cap: usize,
    /// The big-block threshold when no learner runs (`HAKMEM_THRESHOLD_KB`).
    pub fixed_threshold: usize,
    pub seed: u64,
    /// `HAKMEM_CHECK=1`: validate every free of the configured allocator (block start,
    /// page in use, block not already free) before it is done.
    pub check: bool,
    /// `HAKMEM_SITES=1`: the sites mode (`hakprof sites`): the `reuse` front (every block
    /// carries its site in its header) and every C-ABI allocation counted per call site,
    /// its return address kept for symbolization.
    pub sites: bool,
    /// The sites mode's mean bytes between two sampled stacks (`HAKMEM_SAMPLE_BYTES`,
    /// 1 ..= 1 GiB; 1: every allocation's stack, exact per stack at one unwind a call).
    pub sample_bytes: usize,
    /// `check || sites`: whether a C-ABI free off the fast path has anything to do before
    /// the front frees (one test on that path for both).
    pub free_hooks: bool,
    /// Transparent huge pages for big blocks (`HAKMEM_THP`).
    pub huge_pages: HugePages,
}

/// The BigCache's cap: 4 GiB of mappings unless `HAKMEM_BIGCACHE_MB` says otherwise (up to
/// 1 TiB). Mapped, not resident: only the pages a program wrote count in its RSS, and the
/// thermal policy gives idle blocks' pages back (250 ms) and then the blocks (2 s).
pub const DEFAULT_BIGCACHE_CAP: usize = 4 << 30;
pub const MAX_BIGCACHE_MB: usize = 1 << 20;
/// The sites mode's mean bytes between sampled stacks (jemalloc samples every 512 KiB).
pub const DEFAULT_SAMPLE_BYTES: usize = 256 << 10;
pub const MAX_SAMPLE_BYTES: usize = 1 << 30;
/// The threshold when no learner runs (unless `HAKMEM_THRESHOLD_KB` sets it).
pub const FIXED_THRESHOLD: usize = 2 << 20;
pub const MAX_THRESHOLD_KB: usize = 1 << 20;

impl Config {
    pub const fn preset(mode: Mode) -> Config {
        let (elo, ucb1, bigcache, batch, lifecycle, every) = match mode {
            Mode::Minimal => (false, false, false, false, false, 100),
            Mode::Fast => (false, false, true, false, false, 100),
            Mode::Balanced => (true, false, true, true, true, 100),
            Mode::Learning => (true, true, true, true, true, 100),
            Mode::Research => (true, true, true, true, true, 10),
        };
        Config {
            mode,
            front: Front::Auto,
            elo,
            ucb1,
            bigcache,
            batch_madvise: batch,
            lifecycle,
            select_every: every,
            bigcache_cap: DEFAULT_BIGCACHE_CAP,
            fixed_threshold: FIXED_THRESHOLD,
            seed: 0x4841_4b4d_454d, // "HAKMEM"
            check: false,
            sites: false,
            sample_bytes: DEFAULT_SAMPLE_BYTES,
            free_hooks: false,
            huge_pages: HugePages::Off,
        }
    }

    /// Builds the configuration from `var` (an environment lookup), reporting each bad
    /// value through `warn`.
    pub fn from_env<'v>(
        var: impl Fn(&str) -> Option<&'v str>,
        mut warn: impl FnMut(fmt::Arguments<'_>),
    ) -> Config {
        let mut bad = |name: &str, value: &str, accepted: &str| {
            warn(format_args!(
                "hakmem: ignoring {name}={value:?}: accepted values are {accepted}"
            ))
        };
        let mut c = Config::preset(Mode::Balanced);
        if let Some(v) = var("HAKMEM_MODE") {
            match Mode::parse(v) {
                Some(m) => c = Config::preset(m),
                None => bad("HAKMEM_MODE", v, Mode::NAMES),
            }
        }
        let mut flag = |name: &str| match var(name) {
            None | Some("0") | Some("") => false,
            Some("1") => true,
            Some(v) => {
                bad(name, v, "0|1");
                false
            }
        };
        let (no_cache, no_elo, minimal) = (
            flag("HAKMEM_DISABLE_BIGCACHE"),
            flag("HAKMEM_DISABLE_ELO"),
            flag("HAKMEM_MINIMAL"),
        );
        c.check = flag("HAKMEM_CHECK");
        c.sites = flag("HAKMEM_SITES");
        if no_cache || minimal {
            c.bigcache = false;
        }
        if no_elo || minimal {
            c.elo = false;
            c.ucb1 = false;
        }
        if let Some(v) = var("HAKMEM_FRONT") {
            match Front::parse(v) {
                Some(f) => c.front = f,
                None => bad("HAKMEM_FRONT", v, Front::NAMES),
            }
        }
        if c.sites {
            c.front = Front::Reuse; // the site of every block is in its header
        }
        c.free_hooks = c.check || c.sites;
        if let Some(v) = var("HAKMEM_SEED") {
            match v.parse() {
                Ok(s) => c.seed = s,
                Err(_) => bad("HAKMEM_SEED", v, "an unsigned integer"),
            }
        }
        if let Some(v) = var("HAKMEM_THRESHOLD_KB") {
            match v.parse::<usize>() {
                Ok(kb) if (1..=MAX_THRESHOLD_KB).contains(&kb) => {
                    c.fixed_threshold = kb << 10;
                    c.elo = false;
                    c.ucb1 = false;
                }
                _ => bad("HAKMEM_THRESHOLD_KB", v, "1..=1048576"),
            }
        }
        if let Some(v) = var("HAKMEM_THP") {
            match HugePages::parse(v) {
                Some(h) => c.huge_pages = h,
                None => bad("HAKMEM_THP", v, HugePages::NAMES),
            }
        }
        if let Some(v) = var("HAKMEM_SAMPLE_BYTES") {
            match v.parse::<usize>() {
                Ok(n) if (1..=MAX_SAMPLE_BYTES).contains(&n) => c.sample_bytes = n,
                _ => bad("HAKMEM_SAMPLE_BYTES", v, "1..=1073741824"),
            }
        }
        if let Some(v) = var("HAKMEM_BIGCACHE_MB") {
            match v.parse::<usize>() {
                Ok(mb) if (1..=MAX_BIGCACHE_MB).contains(&mb) => c.bigcache_cap = mb << 20,
                _ => bad("HAKMEM_BIGCACHE_MB", v, "1..=1048576"),
            }
        }
        c
    }
}

// ---------------------------------------------------------------------------------------
// The process-wide configuration, read once.
// ---------------------------------------------------------------------------------------

struct Global {
    state: AtomicU8,
    value: UnsafeCell<Config>,
}
// SAFETY: `value` is written once by the thread that wins `state` 0 → 1, before it stores
// 2 (Release); readers read it only after seeing 2 (Acquire).
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    state: AtomicU8::new(0),
    value: UnsafeCell::new(Config::preset(Mode::Balanced)),
};

/// Whether the pool may serve small blocks with no further question: the front is not
/// `reuse` and the checked mode is off (the C ABI's inline paths, see `heap::fast`).
pub fn pool_fast() -> bool {
    let c = get();
    c.front != Front::Reuse && !c.check
}

/// The process's configuration (read from the environment on first use).
#[inline(always)]
pub fn get() -> &'static Config {
    if GLOBAL.state.load(Ordering::Acquire) != 2 {
        load();
    }
    // SAFETY: state 2 means the value is written and never changes again.
    unsafe { &*GLOBAL.value.get() }
}

/// The configuration if it has been read, without reading it: for `_exit`, which may run
/// in a signal handler that interrupted the first read (`get` would wait for it forever).
pub fn get_if_loaded() -> Option<&'static Config> {
    if GLOBAL.state.load(Ordering::Acquire) != 2 {
        return None;
    }
    // SAFETY: state 2 means the value was written and is never written again.
    Some(unsafe { &*GLOBAL.value.get() })
}

#[cold]
fn load() {
    if GLOBAL
        .state
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        let c = Config::from_env(getenv, crate::diag::eprint_line);
        // SAFETY: we won the race; nobody reads the value before state becomes 2.
        unsafe { *GLOBAL.value.get() = c };
        GLOBAL.state.store(2, Ordering::Release);
    } else {
        while GLOBAL.state.load(Ordering::Acquire) != 2 {
            core::hint::spin_loop();
        }
    }
}

/// `getenv` without allocating; values that are not UTF-8 are treated as absent. The one
/// reader of the environment for the allocator (its switches and the stats report).
pub(crate) fn getenv(name: &str) -> Option<&'static str> {
    let mut buf = [0u8; 64];
    let n = name.len().min(63);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: `buf` is NUL-terminated; getenv does not allocate.
    let v = unsafe { libc::getenv(buf.as_ptr() as *const libc::c_char) };
    if v.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string that lives as long as the environment
    // entry (the process's life, unless the program calls setenv on it).
    unsafe { core::ffi::CStr::from_ptr(v) }.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let mut warnings = Vec::new();
        let c = Config::from_env(
            |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| *v),
            |a| warnings.push(a.to_string()),
        );
        (c, warnings)
    }

    #[test]
    fn default_is_balanced_auto() {
        let (c, w) = parse(&[]);
        assert_eq!(c, Config::preset(Mode::Balanced));
        assert_eq!(c.front, Front::Auto);
        assert!(c.elo && c.bigcache && c.batch_madvise && c.lifecycle && !c.ucb1);
        assert!(w.is_empty());
    }

    #[test]
    fn presets_match_the_table() {
        let m = |mode| {
            let c = Config::preset(mode);
            (
                c.elo,
                c.ucb1,
                c.bigcache,
                c.batch_madvise,
                c.lifecycle,
                c.select_every,
            )
        };
        assert_eq!(m(Mode::Minimal), (false, false, false, false, false, 100));
        assert_eq!(m(Mode::Fast), (false, false, true, false, false, 100));
        assert_eq!(m(Mode::Learning), (true, true, true, true, true, 100));
        assert_eq!(m(Mode::Research), (true, true, true, true, true, 10));
    }

    #[test]
    fn switches_override_the_mode() {
        let (c, _) = parse(&[
            ("HAKMEM_MODE", "research"),
            ("HAKMEM_DISABLE_BIGCACHE", "1"),
        ]);
        assert!(!c.bigcache && c.elo && c.ucb1);
        let (c, _) = parse(&[("HAKMEM_SITES", "1"), ("HAKMEM_FRONT", "pool")]);
        assert!(
            c.sites && c.front == Front::Reuse,
            "the sites mode needs the headers"
        );
        let (c, w) = parse(&[("HAKMEM_THRESHOLD_KB", "768")]);
        assert!(w.is_empty());
        assert_eq!(c.fixed_threshold, 768 << 10);
        assert!(
            !c.elo && !c.ucb1 && c.bigcache,
            "a fixed policy: learners off, cache on"
        );
        let (c, w) = parse(&[("HAKMEM_THRESHOLD_KB", "0")]);
        assert_eq!((c.fixed_threshold, c.elo), (FIXED_THRESHOLD, true));
        assert!(w.iter().any(|l| l.contains("HAKMEM_THRESHOLD_KB")));
        let (c, _) = parse(&[("HAKMEM_DISABLE_ELO", "1")]);
        assert!(!c.elo && !c.ucb1 && c.bigcache);
        let (c, _) = parse(&[
            ("HAKMEM_MINIMAL", "1"),
            ("HAKMEM_FRONT", "reuse"),
            ("HAKMEM_SEED", "7"),
        ]);
        assert!(!c.elo && !c.bigcache && !c.check);
        assert_eq!((c.front, c.seed), (Front::Reuse, 7));
        let (c, w) = parse(&[("HAKMEM_THP", "1")]);
        assert_eq!((c.huge_pages, w.len()), (HugePages::On, 0));
        let (c, _) = parse(&[("HAKMEM_THP", "site")]);
        assert_eq!(c.huge_pages, HugePages::PerSite);
        let (c, w) = parse(&[("HAKMEM_THP", "yes")]);
        assert_eq!(
            c.huge_pages,
            HugePages::Off,
            "a bad value keeps the default"
        );
        assert!(w.iter().any(|l| l.contains("HAKMEM_THP")));
        let (c, _) = parse(&[("HAKMEM_BIGCACHE_MB", "256")]);
        assert_eq!(c.bigcache_cap, 256 << 20);
        let (c, _) = parse(&[("HAKMEM_CHECK", "1")]);
        assert!(c.check && c.elo, "the checked mode changes nothing else");
    }

    #[test]
    fn bad_values_warn_once_each_naming_the_variable_and_keep_defaults() {
        let (c, w) = parse(&[
            ("HAKMEM_MODE", "turbo"),
            ("HAKMEM_FRONT", "fastest"),
            ("HAKMEM_DISABLE_ELO", "yes"),
            ("HAKMEM_SEED", "-3"),
            ("HAKMEM_BIGCACHE_MB", "0"),
        ]);
        assert_eq!(c, Config::preset(Mode::Balanced));
        assert_eq!(w.len(), 5, "{w:?}");
        assert!(
            w[0].contains("HAKMEM_MODE")
                && w[0].contains("minimal|fast|balanced|learning|research")
        );
        assert!(w
            .iter()
            .any(|l| l.contains("HAKMEM_FRONT") && l.contains("auto|pool|reuse")));
        assert!(w
            .iter()
            .any(|l| l.contains("HAKMEM_DISABLE_ELO") && l.contains("0|1")));
    }
}
