//! `hakprof sites`: who allocates what in any program. The program runs under the preload
//! in the sites mode (`HAKMEM_SITES=1`: every C-ABI allocation counted per call site, its
//! return address kept; a Rust `alloc_at` site by its source location) and writes its
//! stats JSON at exit with its mappings (`/proc/self/maps`). Symbolization happens here,
//! after the run, never inside the allocator (`symbols`).
//!
//! Stacks come from the preload's DWARF unwinder (no frame pointers needed; 32 frames at
//! most): each site keeps the stack of its first allocation, and allocations are sampled
//! by bytes (one every 256 KiB on average, `--sample-bytes`; 1: every one) with their
//! stacks, which tell apart the callers of a wrapper like `xmalloc`. A sampled block keeps
//! its stack, so each stack's leaks, temporaries and bytes live at the heap's peak are
//! its own (estimated from the samples as jemalloc's profiler does; exact per site, and
//! per stack too when every allocation is sampled). Five flamegraphs are drawn with
//! inferno, one per cost: allocations, bytes, leaked, temporary, live at the peak. Every
//! process the command starts writes its own stats (also from a crash's signal handler);
//! the report merges them (sites of one function and line are one row), lists the
//! processes, and names those that started and wrote nothing.

use crate::flame;
use crate::symbols::{parse_maps, Frame, Mapping, Symbolizer};
use microbench::native;
use microbench::table::{self, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sizes in one power-of-two bucket (`upto`: the bucket's largest size; none for the
/// last bucket, above 64 MiB).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SizeBucket {
    pub upto: Option<u64>,
    pub count: u64,
}

/// One call site, symbolized: the function that called `malloc` (`symbol`, `file`,
/// `line`), and what the sites mode counted there, summed over the processes it ran in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SiteRow {
    pub symbol: String,
    pub module: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The return address as the (first) process ran.
    pub addr: u64,
    pub count: u64,
    pub bytes: u64,
    /// The most bytes the site had live at once (summed over processes).
    pub peak_live_bytes: i64,
    /// Bytes live at the heap's peak (its last snapshot, within 1/64 of the peak).
    pub live_at_peak: i64,
    /// Bytes never freed (leaks, or blocks freed by nobody before exit).
    pub live_at_exit: i64,
    /// Allocations freed by their thread before that thread allocated again (this report's
    /// definition: see `TEMPORARY`).
    pub temporary: u64,
    /// Allocations freed before any other allocation or free in the process (heaptrack's
    /// definition, for comparison: see `TEMPORARY_HEAPTRACK`).
    #[serde(default)]
    pub temporary_heaptrack: u64,
    /// Non-empty size buckets.
    pub sizes: Vec<SizeBucket>,
    /// What hakmem decided for the site's big blocks: the threshold last chosen (0: the
    /// site made none), the UCB1 arm it adopted (where UCB1 runs), BigCache hits.
    pub threshold: u64,
    pub ucb1_arm: Option<u64>,
    pub bigcache_hits: u64,
    /// The stack of the site's first allocation, the caller of `malloc` first (inlined
    /// functions as frames of their own).
    pub stack: Vec<Frame>,
}

/// A sampled allocation stack (one allocation every `sample_interval` bytes on average):
/// what the allocations it made stand for, estimated from its samples (exact when
/// `stacks_exact`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampledStack {
    pub process: String,
    pub samples: u64,
    pub allocations: u64,
    pub bytes: u64,
    /// Allocations and bytes of it never freed (live at exit).
    pub leaked: u64,
    pub leaked_bytes: i64,
    /// Allocations freed by their thread before it allocated again.
    pub temporary: u64,
    /// Its bytes live at the heap's peak (its last snapshot).
    pub live_at_peak: i64,
    /// The caller of `malloc` first (inlined functions as frames of their own).
    pub stack: Vec<Frame>,
}

/// A process that started (the preload set itself up in it) and wrote no report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SilentProcess {
    pub pid: u64,
    pub name: String,
    pub exe: String,
}

/// One process the command started, from its exit report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessRow {
    pub name: String,
    pub pid: u64,
    pub elapsed_s: f64,
    pub peak_rss_kib: u64,
    pub allocations: u64,
    pub bytes: u64,
    /// The C-ABI heap's live bytes at its peak snapshot.
    pub heap_peak_bytes: i64,
    /// The signal that killed it, when its report was written from the crash handler: its
    /// counts stop at the crash.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Parts of its report that could not be read (see the stats JSON's `partial`).
    #[serde(default)]
    pub partial: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SitesReport {
    pub program: String,
    pub args: Vec<String>,
    /// The command's exit status, or the signal that ended it.
    pub exit_status: Option<i32>,
    pub signal: Option<i32>,
    /// What the reader must know about this run (a process that wrote no stats, a failed
    /// exit, what the flamegraph drew).
    pub notes: Vec<String>,
    /// Every process that wrote its stats (children of the command too), in pid order.
    pub processes: Vec<ProcessRow>,
    /// Sorted by bytes, largest first.
    pub sites: Vec<SiteRow>,
    /// Allocations counted in the table's shared "other" entry (the table holds 256
    /// sites per process; a site that finds no free entry within 8 probes shares it).
    pub other_count: u64,
    pub other_bytes: u64,
    /// The mean bytes between two stack samples (1: every allocation).
    pub sample_interval: u64,
    /// Whether every allocation was sampled: then each stack's figures are exact, not
    /// estimates.
    #[serde(default)]
    pub stacks_exact: bool,
    /// Every sampled stack, by bytes, heaviest first: what the flamegraphs draw.
    pub sampled_stacks: Vec<SampledStack>,
    /// The bytes (estimated) of samples that found the stack table full (1024 stacks per
    /// process).
    pub dropped_sample_bytes: u64,
    /// Processes that started and wrote no report.
    #[serde(default)]
    pub silent_processes: Vec<SilentProcess>,
    /// The definitions behind the columns whose names differ between profilers.
    #[serde(default)]
    pub definitions: Definitions,
    /// Modules symbolized from a separate debug file, and which file.
    #[serde(default)]
    pub debug_files: Vec<(String, String)>,
}

/// What "temporary" means here and in heaptrack, written into `sites.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Definitions {
    pub temporary: String,
    pub temporary_heaptrack: String,
    pub live_at_peak: String,
    pub leaked: String,
}

impl Default for Definitions {
    fn default() -> Self {
        Definitions {
            temporary: TEMPORARY.into(),
            temporary_heaptrack: TEMPORARY_HEAPTRACK.into(),
            live_at_peak: LIVE_AT_PEAK.into(),
            leaked: LEAKED.into(),
        }
    }
}

/// This report's temporary allocation.
pub const TEMPORARY: &str = "freed by the thread that allocated it before that thread allocated anything else (other threads' allocations and any frees in between do not matter)";
/// heaptrack's, as its analysis counts it.
pub const TEMPORARY_HEAPTRACK: &str = "freed before any other allocation or free in the whole process (heaptrack's rule: the free of the process's last allocation, every free clearing it); heaptrack 1.4 applies it to the freed block's size and stack rather than its address, so a free of an older block of the same size and stack counts too, and its count is higher (sqlite3 on tests/data/sqlite.sql: 403 343 here, 563 358 in heaptrack, of 1 396 462 allocations in both)";
pub const LIVE_AT_PEAK: &str = "bytes live at the last snapshot of the heap's peak, taken each time the heap grows 1/64 past the previous one (within 1.6 % of the true peak); realloc counts the old block freed before the new one is allocated";
pub const LEAKED: &str =
    "bytes live at exit: never freed, or freed by nobody before the process ended";

/// The largest size of each of the preload's size buckets (see `hakmem`'s
/// `learn::sites::SIZE_BUCKETS`: bucket 0 up to 16 bytes, then powers of two).
fn bucket_upto(k: usize, buckets: usize) -> Option<u64> {
    (k + 1 < buckets).then(|| 16u64 << k)
}

/// One process's sites from the stats JSON it wrote, symbolized (not yet merged).
/// The stack of return addresses `addrs`, symbolized (inline frames expanded).
fn symbolize_stack(sym: &mut Symbolizer, maps: &[Mapping], addrs: &[Value]) -> Vec<Frame> {
    let mut stack = Vec::new();
    for f in addrs {
        stack.extend(sym.resolve(maps, f.as_u64().unwrap_or(0)));
    }
    stack
}

/// One process's sampled stacks, symbolized. Counts come in fixed point (`fx` per
/// allocation) and are rounded here.
fn process_samples(json: &Value, sym: &mut Symbolizer) -> Vec<SampledStack> {
    let maps = parse_maps(json["maps"].as_str().unwrap_or(""));
    let name = json["process"]["name"].as_str().unwrap_or("?");
    let samples = &json["stack_samples"];
    let fx = samples["fx"].as_u64().unwrap_or(1).max(1) as f64;
    let count = |v: &Value| (v.as_f64().unwrap_or(0.0) / fx).round().max(0.0) as u64;
    samples["stacks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| SampledStack {
            process: name.to_string(),
            samples: s["samples"].as_u64().unwrap_or(0),
            allocations: count(&s["allocs_fx"]),
            bytes: s["bytes"].as_u64().unwrap_or(0),
            leaked: count(&s["live_fx"]),
            leaked_bytes: s["live_bytes"].as_i64().unwrap_or(0),
            temporary: count(&s["temporary_fx"]),
            live_at_peak: s["at_peak_bytes"].as_i64().unwrap_or(0),
            stack: symbolize_stack(sym, &maps, s["frames"].as_array().map_or(&[], |v| v)),
        })
        .collect()
}

fn process_sites(
    json: &Value,
    sym: &mut Symbolizer,
) -> Result<(ProcessRow, Vec<SiteRow>, u64, u64), String> {
    if json["sites_mode"] != Value::Bool(true) {
        return Err("the stats were not written in the sites mode (HAKMEM_SITES=1)".into());
    }
    let maps = parse_maps(json["maps"].as_str().unwrap_or(""));
    let arms: HashMap<u64, u64> = json["ucb1"]["sites"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| Some((u["site"].as_u64()?, u["adopted"].as_u64()?)))
        .collect();
    let (mut other_count, mut other_bytes) = (0, 0);
    let mut rows = Vec::new();
    for s in json["sites"].as_array().into_iter().flatten() {
        let count = s["count"].as_u64().unwrap_or(0);
        let bytes = s["bytes"].as_u64().unwrap_or(0);
        if s["site"] == "other" {
            (other_count, other_bytes) = (count, bytes);
            continue;
        }
        let addr = s["addr"].as_u64().unwrap_or(0);
        let mut stack = symbolize_stack(sym, &maps, s["stack"].as_array().map_or(&[], |v| v));
        let at = &s["location"];
        let here = if let Some(file) = at["file"].as_str() {
            // A Rust site (`alloc_at`): named by its source location.
            let line = at["line"].as_u64().unwrap_or(0);
            vec![Frame {
                symbol: format!("{file}:{line}:{}", at["column"].as_u64().unwrap_or(0)),
                module: json["process"]["exe"].as_str().unwrap_or("?").to_string(),
                file: Some(file.to_string()),
                line: Some(line as u32),
            }]
        } else if addr == 0 {
            vec![Frame {
                symbol: "(unknown caller)".into(),
                module: "?".into(),
                file: None,
                line: None,
            }]
        } else {
            sym.resolve(&maps, addr)
        };
        if stack.is_empty() {
            stack = here.clone();
        }
        let sizes = s["sizes"].as_array().cloned().unwrap_or_default();
        let n = sizes.len();
        let site = here.into_iter().next().expect("resolve is never empty");
        rows.push(SiteRow {
            symbol: site.symbol,
            module: site.module,
            file: site.file,
            line: site.line,
            addr,
            count,
            bytes,
            peak_live_bytes: s["peak_live_bytes"].as_i64().unwrap_or(0),
            live_at_peak: s["live_at_peak"].as_i64().unwrap_or(0),
            live_at_exit: s["live_bytes"].as_i64().unwrap_or(0),
            temporary: s["temporary"].as_u64().unwrap_or(0),
            temporary_heaptrack: s["temporary_process"].as_u64().unwrap_or(0),
            sizes: sizes
                .iter()
                .enumerate()
                .filter_map(|(k, c)| {
                    let count = c.as_u64().filter(|&c| c > 0)?;
                    Some(SizeBucket {
                        upto: bucket_upto(k, n),
                        count,
                    })
                })
                .collect(),
            threshold: s["threshold"].as_u64().unwrap_or(0),
            ucb1_arm: s["site"].as_u64().and_then(|id| arms.get(&id).copied()),
            bigcache_hits: s["bigcache_hits"].as_u64().unwrap_or(0),
            stack,
        });
    }
    let p = &json["process"];
    let process = ProcessRow {
        name: p["name"].as_str().unwrap_or("?").to_string(),
        pid: p["pid"].as_u64().unwrap_or(0),
        elapsed_s: p["elapsed_s"].as_f64().unwrap_or(0.0),
        peak_rss_kib: p["peak_rss_kib"].as_u64().unwrap_or(0),
        allocations: rows.iter().map(|r| r.count).sum::<u64>() + other_count,
        bytes: rows.iter().map(|r| r.bytes).sum::<u64>() + other_bytes,
        heap_peak_bytes: json["heap_peak_bytes"].as_i64().unwrap_or(0),
        signal: json["signal"].as_i64().map(|s| s as i32),
        partial: json["partial"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
    };
    Ok((process, rows, other_count, other_bytes))
}

/// Adds `b`'s counts into `a` (the same function and line, in another process or from
/// another return address).
fn merge_into(a: &mut SiteRow, b: SiteRow) {
    a.count += b.count;
    a.bytes += b.bytes;
    a.peak_live_bytes += b.peak_live_bytes;
    a.live_at_peak += b.live_at_peak;
    a.live_at_exit += b.live_at_exit;
    a.temporary += b.temporary;
    a.temporary_heaptrack += b.temporary_heaptrack;
    a.bigcache_hits += b.bigcache_hits;
    a.threshold = a.threshold.max(b.threshold);
    a.ucb1_arm = a.ucb1_arm.or(b.ucb1_arm);
    for s in b.sizes {
        match a.sizes.iter_mut().find(|x| x.upto == s.upto) {
            Some(x) => x.count += s.count,
            None => a.sizes.push(s),
        }
    }
    a.sizes.sort_by_key(|s| s.upto.unwrap_or(u64::MAX));
}

/// Builds the report from the stats JSON each process wrote (one or more).
pub fn from_stats(
    program: &str,
    args: &[String],
    stats: &[Value],
    exit_status: Option<i32>,
) -> Result<SitesReport, String> {
    let mut sym = Symbolizer::default();
    let mut processes = Vec::new();
    let mut by_place: HashMap<(String, String, Option<String>, Option<u32>), SiteRow> =
        HashMap::new();
    let (mut other_count, mut other_bytes) = (0, 0);
    let mut sampled_stacks = Vec::new();
    let mut dropped_sample_bytes = 0;
    for json in stats {
        let (p, rows, oc, ob) = process_sites(json, &mut sym)?;
        processes.push(p);
        sampled_stacks.extend(process_samples(json, &mut sym));
        dropped_sample_bytes += json["stack_samples"]["dropped"].as_u64().unwrap_or(0);
        other_count += oc;
        other_bytes += ob;
        for r in rows {
            let key = (r.module.clone(), r.symbol.clone(), r.file.clone(), r.line);
            match by_place.get_mut(&key) {
                Some(a) => merge_into(a, r),
                None => {
                    by_place.insert(key, r);
                }
            }
        }
    }
    if processes.is_empty() {
        return Err("no process wrote its stats".into());
    }
    processes.sort_by_key(|p| p.pid);
    let mut sites: Vec<SiteRow> = by_place.into_values().collect();
    sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.count.cmp(&a.count)));
    // Stacks that differ only in return addresses within the same functions (as named by
    // debug info) are one, as the flamegraphs draw them; a nearest-symbol guess keeps its
    // offset, so two functions of a stripped module never merge into one.
    let mut by_stack: HashMap<(String, Vec<String>), SampledStack> = HashMap::new();
    for s in sampled_stacks {
        let key = (s.process.clone(), s.stack.iter().map(frame_label).collect());
        match by_stack.get_mut(&key) {
            Some(a) => {
                a.samples += s.samples;
                a.allocations += s.allocations;
                a.bytes += s.bytes;
                a.leaked += s.leaked;
                a.leaked_bytes += s.leaked_bytes;
                a.temporary += s.temporary;
                a.live_at_peak += s.live_at_peak;
            }
            None => {
                by_stack.insert(key, s);
            }
        }
    }
    let mut sampled_stacks: Vec<SampledStack> = by_stack.into_values().collect();
    sampled_stacks.sort_by_key(|s| std::cmp::Reverse(s.bytes));
    let sample_interval = stats
        .iter()
        .find_map(|j| j["stack_samples"]["interval"].as_u64())
        .unwrap_or(0);
    let mut debug_files: Vec<(String, String)> = sym
        .debug_files
        .iter()
        .map(|(m, d)| (m.clone(), d.display().to_string()))
        .collect();
    debug_files.sort();
    Ok(SitesReport {
        program: program.to_string(),
        args: args.to_vec(),
        exit_status,
        signal: None,
        notes: Vec::new(),
        processes,
        sites,
        other_count,
        other_bytes,
        sample_interval,
        stacks_exact: sample_interval == 1,
        sampled_stacks,
        dropped_sample_bytes,
        silent_processes: Vec::new(),
        definitions: Definitions::default(),
        debug_files,
    })
}

/// Bytes as people read them, as the preload's stderr report writes them: exact below
/// 64 KiB (`20000 B`: a leak's bytes read as counted), then `48.0 KiB`, `3.0 MiB`,
/// `1.25 GiB`, truncated, never rounded up to the next unit (1 048 572 B is `1023.9 KiB`,
/// not `1024.0 KiB`).
pub fn human_bytes(n: i64) -> String {
    let a = n.unsigned_abs() as u128;
    let sign = if n < 0 { "-" } else { "" };
    let (unit, shift, places) = match a {
        a if a < 64 << 10 => return format!("{n} B"),
        a if a < 1 << 20 => ("KiB", 10, 10),
        a if a < 1 << 30 => ("MiB", 20, 10),
        _ => ("GiB", 30, 100),
    };
    let scaled = (a * places) >> shift; // truncated
    let width = if places == 10 { 1 } else { 2 };
    format!(
        "{sign}{}.{:0width$} {unit}",
        scaled / places,
        scaled % places
    )
}

impl SiteRow {
    /// `dir/file:line` (the file's last two path parts; `sites.json` keeps the whole
    /// path), `dir/file`, or a dash.
    pub fn file_line(&self) -> String {
        let short = |f: &str| {
            let mut parts = f.rsplitn(3, '/');
            let (name, dir) = (parts.next().unwrap_or(f), parts.next());
            dir.map_or(name.to_string(), |d| format!("{d}/{name}"))
        };
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{}:{l}", short(f)),
            (Some(f), None) => short(f),
            _ => "–".into(),
        }
    }

    /// The two most frequent size buckets: `≤64 B ×100, ≤1.0 KiB ×3`.
    pub fn common_sizes(&self) -> String {
        let mut b: Vec<&SizeBucket> = self.sizes.iter().collect();
        b.sort_by_key(|x| std::cmp::Reverse(x.count));
        b.iter()
            .take(2)
            .map(|s| match s.upto {
                Some(u) => format!("≤{} ×{}", human_bytes(u as i64), s.count),
                None => format!(">64 MiB ×{}", s.count),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What hakmem learned for the site: its threshold, UCB1 arm and BigCache hits (a
    /// dash for a site of small blocks only).
    pub fn policy(&self) -> String {
        if self.threshold == 0 && self.bigcache_hits == 0 {
            return "–".into();
        }
        let mut s = format!("threshold {}", human_bytes(self.threshold as i64));
        if let Some(a) = self.ucb1_arm {
            s += &format!(", UCB1 arm {}", human_bytes(a as i64));
        }
        s + &format!(", {} BigCache hits", self.bigcache_hits)
    }
}

fn module_name(m: &str) -> String {
    Path::new(m)
        .file_name()
        .map_or(m.to_string(), |f| f.to_string_lossy().into_owned())
}

/// `root;outermost;…;innermost weight\n`.
fn folded_line(root: &str, stack: &[Frame], weight: u64) -> String {
    let frames: Vec<String> = stack.iter().rev().map(frame_label).collect();
    format!(
        "{};{} {weight}\n",
        root.replace([';', ' '], "_"),
        frames.join(";")
    )
}

/// A frame as a flamegraph label: the function as debug info names it (one function is
/// one frame), a nearest-symbol guess with its offset (`name+0x1c [module]`: the guess
/// names the exported symbol below a static function, so two functions must not merge
/// into one name), or the address and `[module]` when it has no name.
pub fn frame_label(f: &Frame) -> String {
    let guess = f.symbol.starts_with("0x")
        || f.symbol
            .rsplit_once("+0x")
            .is_some_and(|(_, off)| off.bytes().all(|b| b.is_ascii_hexdigit()));
    let s = if guess {
        format!("{} [{}]", f.symbol, module_name(&f.module))
    } else {
        f.symbol.clone()
    };
    s.replace([';', '\n'], ":")
}

impl SitesReport {
    /// The top `n` sites by bytes, then one "other" row for the rest of the table and the
    /// table's overflow entry.
    pub fn table(&self, n: usize) -> Table {
        let mut t = Table::new(&[
            "site (function)",
            "file:line",
            "module",
            "count",
            "bytes",
            "peak live",
            "live at heap peak",
            "live at exit",
            "temporary",
            "temporary (heaptrack)",
            "common sizes",
            "hakmem's policy",
        ]);
        for r in self.sites.iter().take(n) {
            t.push(vec![
                r.symbol.clone(),
                r.file_line(),
                module_name(&r.module),
                r.count.to_string(),
                human_bytes(r.bytes as i64),
                human_bytes(r.peak_live_bytes),
                human_bytes(r.live_at_peak),
                human_bytes(r.live_at_exit),
                r.temporary.to_string(),
                r.temporary_heaptrack.to_string(),
                r.common_sizes(),
                r.policy(),
            ]);
        }
        let rest = &self.sites[self.sites.len().min(n)..];
        if !rest.is_empty() || self.other_count > 0 {
            let sum = |f: fn(&SiteRow) -> i64| rest.iter().map(f).sum::<i64>();
            t.push(vec![
                format!(
                    "other ({} more sites; {} allocations past the 256-site table)",
                    rest.len(),
                    self.other_count
                ),
                String::new(),
                String::new(),
                (rest.iter().map(|r| r.count).sum::<u64>() + self.other_count).to_string(),
                human_bytes(sum(|r| r.bytes as i64) + self.other_bytes as i64),
                String::new(),
                human_bytes(sum(|r| r.live_at_peak)),
                human_bytes(sum(|r| r.live_at_exit)),
                rest.iter().map(|r| r.temporary).sum::<u64>().to_string(),
                rest.iter()
                    .map(|r| r.temporary_heaptrack)
                    .sum::<u64>()
                    .to_string(),
                String::new(),
                String::new(),
            ]);
        }
        t
    }

    /// The processes the command started.
    pub fn process_table(&self) -> Table {
        let mut t = Table::new(&[
            "process",
            "pid",
            "elapsed s",
            "peak RSS",
            "allocations",
            "bytes",
            "heap at peak",
        ]);
        for p in &self.processes {
            t.push(vec![
                p.name.clone(),
                p.pid.to_string(),
                format!("{:.3}", p.elapsed_s),
                human_bytes(p.peak_rss_kib as i64 * 1024),
                p.allocations.to_string(),
                human_bytes(p.bytes as i64),
                human_bytes(p.heap_peak_bytes),
            ]);
        }
        t
    }

    /// Folded stacks for inferno, one line per site: the process (the first one's name;
    /// `+N` when the command started more), the site's first stack outermost first, and
    /// `weight`.
    pub fn folded(&self, weight: impl Fn(&SiteRow) -> i64) -> String {
        let mut out = String::new();
        let root = match self.processes.len() {
            0 | 1 => module_name(&self.program),
            n => format!("{} (+{} processes)", module_name(&self.program), n - 1),
        };
        for r in &self.sites {
            let w = weight(r);
            if w > 0 {
                out += &folded_line(&root, &r.stack, w as u64);
            }
        }
        out
    }

    /// The folded stacks of one cost: the sampled stacks where they hold any of it, else
    /// each site's first stack (exact per site, but a wrapper's callers are not told
    /// apart). Whether it is by sampled stack.
    pub fn folded_cost(&self, cost: Cost) -> (String, bool) {
        let mut out = String::new();
        for s in &self.sampled_stacks {
            let w = cost.of_stack(s);
            if w > 0 {
                out += &folded_line(&s.process, &s.stack, w as u64);
            }
        }
        if !out.is_empty() {
            return (out, true);
        }
        (self.folded(|r| cost.of_site(r)), false)
    }

    /// The `n` stacks with the most of `cost` (those with none left out): every cost of
    /// each, and the first frames.
    pub fn stacks_table(&self, n: usize, cost: Cost) -> Table {
        let est = if self.stacks_exact { "" } else { "est. " };
        let head: Vec<String> = [
            "stack (caller of malloc ← its callers)".to_string(),
            "process".into(),
            format!("{est}allocations"),
            format!("{est}bytes"),
            format!("{est}leaked"),
            format!("{est}temporary"),
            format!("{est}live at heap peak"),
            "samples".into(),
        ]
        .into();
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        let mut rows: Vec<&SampledStack> = self
            .sampled_stacks
            .iter()
            .filter(|s| cost.of_stack(s) > 0)
            .collect();
        rows.sort_by_key(|s| std::cmp::Reverse(cost.of_stack(s)));
        for s in rows.into_iter().take(n) {
            let frames: Vec<String> = s.stack.iter().take(6).map(frame_label).collect();
            let more = if s.stack.len() > 6 { " ← …" } else { "" };
            t.push(vec![
                format!("{}{more}", frames.join(" ← ")),
                s.process.clone(),
                s.allocations.to_string(),
                human_bytes(s.bytes as i64),
                format!("{} in {}", human_bytes(s.leaked_bytes), s.leaked),
                s.temporary.to_string(),
                human_bytes(s.live_at_peak),
                s.samples.to_string(),
            ]);
        }
        t
    }

    /// The stack tables of the pages: by bytes, then by each cost that has any.
    fn stack_sections(&self, top: usize) -> Vec<(String, Table)> {
        let mut out = vec![(
            "Heaviest stacks by bytes".to_string(),
            self.stacks_table(top.min(10), Cost::Bytes),
        )];
        for cost in [Cost::Leaked, Cost::Peak, Cost::Temporary] {
            let t = self.stacks_table(5, cost);
            if !t.rows.is_empty() {
                out.push((format!("Stacks by {}", cost.what()), t));
            }
        }
        out
    }

    /// The Markdown page: the processes, then the top sites and stacks.
    pub fn markdown(&self, top: usize) -> String {
        let stacks: String = self
            .stack_sections(top)
            .iter()
            .map(|(title, t)| format!("### {title}\n\n{}\n", t.markdown()))
            .collect();
        format!(
            "# Call sites of `{}`\n\n{}{}\n\n{}\n## Top sites by bytes\n\n{}\n## Stacks\n\n{}\n\n{}\n{}\n{}\n",
            self.command_line(),
            self.notes.iter().map(|n| format!("**{n}**\n\n")).collect::<String>(),
            summary(),
            self.process_table().markdown(),
            self.table(top).markdown(),
            self.sample_note(),
            stacks,
            FLAMES,
            Cost::ALL
                .iter()
                .map(|c| format!("- `{}`: {}\n", c.file(), c.what()))
                .collect::<String>(),
        )
    }

    /// How the stacks were sampled, and what fell out of the table.
    pub fn sample_note(&self) -> String {
        let dropped = if self.dropped_sample_bytes > 0 {
            format!(
                " Samples standing for {} found the table of 1024 stacks full and are not drawn.",
                human_bytes(self.dropped_sample_bytes as i64)
            )
        } else {
            String::new()
        };
        if self.stacks_exact {
            return format!("Every allocation's stack was unwound (--sample-bytes 1): each stack's figures are exact.{dropped}");
        }
        format!(
            "Stacks are sampled: one allocation every {} allocated on average (--sample-bytes), its stack unwound; a sampled allocation of s bytes stands for 1/p allocations and s/p bytes (p = 1 − e^(−s/interval), jemalloc's estimate), and the block keeps its stack, so its free, its leak and its bytes at the peak are charged there too. Per-stack figures are estimates (exact per site in the table above; exact per stack with --sample-bytes 1).{dropped}",
            human_bytes(self.sample_interval as i64)
        )
    }

    /// The command as a shell would take it back (arguments with spaces or quotes quoted).
    pub fn command_line(&self) -> String {
        let quote = |a: &str| {
            let plain = a
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
            if plain && !a.is_empty() {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        };
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The HTML page, from `templates/sites.html`.
    pub fn html(&self, top: usize) -> String {
        #[derive(Serialize)]
        struct Section {
            title: String,
            table: String,
        }
        #[derive(Serialize)]
        struct Flame {
            file: &'static str,
            what: &'static str,
        }
        #[derive(Serialize)]
        struct Page {
            css: &'static str,
            command: String,
            notes: Vec<String>,
            summary: String,
            processes: String,
            sites: String,
            sample_note: String,
            stacks: Vec<Section>,
            flames_note: &'static str,
            flames: Vec<Flame>,
        }
        let page = Page {
            css: include_str!("../templates/report.css"),
            command: self.command_line(),
            notes: self.notes.clone(),
            summary: summary(),
            processes: self.process_table().html(),
            sites: self.table(top).html(),
            sample_note: self.sample_note(),
            stacks: self
                .stack_sections(top)
                .into_iter()
                .map(|(title, t)| Section {
                    title,
                    table: t.html(),
                })
                .collect(),
            flames_note: FLAMES,
            flames: Cost::ALL
                .iter()
                .map(|c| Flame {
                    file: c.file(),
                    what: c.what(),
                })
                .collect(),
        };
        let mut tt = table::template_engine();
        tt.add_template("sites", include_str!("../templates/sites.html"))
            .expect("the sites template parses");
        tt.render("sites", &page)
            .expect("the sites page always renders")
    }
}

/// What the site table counts, with the definitions that differ between profilers.
fn summary() -> String {
    format!(
        "Every allocation through the C ABI, counted per call site in hakmem's sites mode (HAKMEM_SITES=1), in every process the command started; sites of one function and line are one row. Sorted by bytes. Exact per site. Temporary: {TEMPORARY}; heaptrack's count (\"temporary (heaptrack)\"): {TEMPORARY_HEAPTRACK}. Live at heap peak: {LIVE_AT_PEAK}. Live at exit: {LEAKED}. hakmem's policy: for big blocks, the threshold last chosen, the UCB1 arm adopted (research mode) and the BigCache's hits."
    )
}

const FLAMES: &str = "One flamegraph per cost, as heaptrack draws them: frames are the sampled stacks (the caller of malloc at the top), widths the stacks' estimated share of the cost (exact with --sample-bytes 1). A cost that no sampled stack holds (a run shorter than one sampling interval; a few small leaks) is drawn on each site's first stack instead, exact per site, and its title says so. Frames named by debug info are functions; a name with +0x… is the nearest symbol below a function the module does not name (no debug info installed).";

/// The costs a flamegraph draws: heaptrack's four (allocations, leaked, temporary, peak)
/// and bytes allocated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cost {
    Allocations,
    Bytes,
    Leaked,
    Temporary,
    Peak,
}

impl Cost {
    pub const ALL: [Cost; 5] = [
        Cost::Bytes,
        Cost::Allocations,
        Cost::Leaked,
        Cost::Temporary,
        Cost::Peak,
    ];

    pub fn file(self) -> &'static str {
        match self {
            Cost::Bytes => "sites.svg",
            Cost::Allocations => "sites-allocations.svg",
            Cost::Leaked => "sites-leaked.svg",
            Cost::Temporary => "sites-temporary.svg",
            Cost::Peak => "sites-peak.svg",
        }
    }

    pub fn what(self) -> &'static str {
        match self {
            Cost::Bytes => "bytes allocated",
            Cost::Allocations => "allocations",
            Cost::Leaked => "bytes leaked (live at exit)",
            Cost::Temporary => "temporary allocations",
            Cost::Peak => "bytes live at the heap's peak",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Cost::Allocations | Cost::Temporary => "allocations",
            _ => "bytes",
        }
    }

    pub fn of_stack(self, s: &SampledStack) -> i64 {
        match self {
            Cost::Bytes => s.bytes as i64,
            Cost::Allocations => s.allocations as i64,
            Cost::Leaked => s.leaked_bytes,
            Cost::Temporary => s.temporary as i64,
            Cost::Peak => s.live_at_peak,
        }
    }

    pub fn of_site(self, r: &SiteRow) -> i64 {
        match self {
            Cost::Bytes => r.bytes as i64,
            Cost::Allocations => r.count as i64,
            Cost::Leaked => r.live_at_exit,
            Cost::Temporary => r.temporary as i64,
            Cost::Peak => r.live_at_peak,
        }
    }
}

/// An SVG that says why there is no flamegraph (inferno draws nothing from no samples).
fn empty_svg(title: &str, why: &str) -> Vec<u8> {
    let esc = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<?xml version=\"1.0\" standalone=\"no\"?><svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"24\" font-family=\"Verdana\" font-size=\"15\">{}</text><text x=\"10\" y=\"48\" font-family=\"Verdana\" font-size=\"13\">{}</text></svg>",
        esc(title),
        esc(why)
    )
    .into_bytes()
}

/// Writes `sites.json`, `sites.md`, `sites.html` and one flamegraph per cost (`Cost`)
/// into `out`.
pub fn write(report: &SitesReport, out: &Path, top: usize) -> Result<(), String> {
    let put = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    let pretty = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    put("sites.json", pretty.as_bytes())?;
    put("sites.md", report.markdown(top).as_bytes())?;
    put("sites.html", report.html(top).as_bytes())?;
    for cost in Cost::ALL {
        let (folded, by_stack) = report.folded_cost(cost);
        let how = if by_stack {
            if report.stacks_exact {
                "by call stack"
            } else {
                "by call stack (sampled)"
            }
        } else {
            "on each site's first stack (no sampled stack holds any)"
        };
        let title = format!("{} {how}: {}", cost.what(), report.command_line());
        let svg = if folded.is_empty() {
            empty_svg(&title, &format!("no {} was counted", cost.what()))
        } else {
            flame::svg(&folded, &title, cost.unit())?
        };
        put(cost.file(), &svg)?;
    }
    Ok(())
}

/// What a reader must know about the flamegraph of bytes, when it is not what it usually
/// is (None: the sampled stacks, as usual).
pub fn flame_note(report: &SitesReport) -> Option<String> {
    if !report.sampled_stacks.is_empty() {
        return None;
    }
    let bytes: u64 = report.sites.iter().map(|s| s.bytes).sum();
    Some(if bytes == 0 {
        "No allocation was counted: the flamegraphs are empty.".into()
    } else {
        format!(
            "No stack was sampled ({} allocated, under the sampling interval): the flamegraphs draw each site on the stack of its first allocation, so callers that share a site are not told apart.",
            human_bytes(bytes as i64)
        )
    })
}

/// The outputs of a run, removed before the next one so none is left stale.
const OUTPUTS: [&str; 8] = [
    "sites.json",
    "sites.md",
    "sites.html",
    "sites.svg",
    "sites-allocations.svg",
    "sites-leaked.svg",
    "sites-temporary.svg",
    "sites-peak.svg",
];

/// What `run` was asked to do besides the command.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Sites listed before the "other" row.
    pub top: usize,
    /// Keep only the processes of this name (comm or executable file name).
    pub only: Option<String>,
    /// The mean bytes between sampled stacks (`HAKMEM_SAMPLE_BYTES`; 1: every allocation;
    /// None: the preload's default).
    pub sample_bytes: Option<u64>,
}

/// A run that produced no report, and the status `hakprof` exits with: the command's own
/// (its status, or 128 + the signal), or 1 when the command ran without failing.
#[derive(Debug)]
pub struct RunError {
    pub message: String,
    pub exit_code: u8,
}

impl From<String> for RunError {
    fn from(message: String) -> Self {
        RunError {
            message,
            exit_code: 1,
        }
    }
}

impl From<&str> for RunError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// The status `hakprof` passes on for a command that ended with `status`.
fn exit_code(status: &std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => 1,
    }
}

/// A signal's name (`SIGSEGV`), or its number.
pub fn signal_name(sig: i32) -> String {
    let names = [
        (1, "SIGHUP"),
        (2, "SIGINT"),
        (3, "SIGQUIT"),
        (4, "SIGILL"),
        (5, "SIGTRAP"),
        (6, "SIGABRT"),
        (7, "SIGBUS"),
        (8, "SIGFPE"),
        (9, "SIGKILL"),
        (11, "SIGSEGV"),
        (13, "SIGPIPE"),
        (14, "SIGALRM"),
        (15, "SIGTERM"),
        (31, "SIGSYS"),
    ];
    names
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or(format!("signal {sig}"), |(_, name)| name.to_string())
}

/// Why the preload could not count `program`'s allocations, if its ELF file says: it is
/// statically linked (the loader, which reads LD_PRELOAD, never runs), or it defines its
/// own `malloc` (which every call in the process reaches first).
fn elf_reason(program: &str) -> Option<String> {
    let path = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    let elf = path.as_ref().and_then(|p| std::fs::read(p).ok());
    let parsed = elf.as_deref().and_then(|d| object::File::parse(d).ok());
    use object::{Object, ObjectSymbol};
    let f = parsed?;
    if f.section_by_name(".interp").is_none() && f.section_by_name(".dynamic").is_none() {
        return Some(format!(
            "the preload was never loaded: `{program}` is statically linked, and the dynamic loader (which reads LD_PRELOAD) never runs for it"
        ));
    }
    let defines = |name: &str| {
        f.dynamic_symbols()
            .chain(f.symbols())
            .any(|s| s.name() == Ok(name) && s.is_definition())
    };
    defines("malloc").then(|| format!(
        "the preload served nothing: `{program}` defines its own malloc, which every call in the process reaches before the preload's"
    ))
}

/// Why no process wrote a report, when none even set the preload up (no `.started`
/// marker): what the program's ELF file says, else the causes left.
fn why_nothing_started(program: &str, ended: &str) -> String {
    if let Some(why) = elf_reason(program) {
        return format!("{why} (the command {ended})");
    }
    format!(
        "no process of `{program}` loaded the preload and allocated through it: the command may clear the environment (env -i) or LD_PRELOAD before its programs start, run only static binaries or programs with their own malloc, or never allocate (the command {ended})"
    )
}

/// Runs `program args` under the preload in the sites mode (its children too). Writes the
/// report's files into `out` (made absolute first: the program may change directory);
/// returns the report.
pub fn run(
    program: &str,
    args: &[String],
    out: &Path,
    opts: &RunOptions,
) -> Result<SitesReport, RunError> {
    use std::os::unix::process::ExitStatusExt;
    let lib = native::hakmem()?.lib.ok_or("hakmem has no library")?;
    let out = std::path::absolute(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let raw: PathBuf = out.join("raw");
    // Stats and pages of an earlier run must not join this one or outlive it.
    let _ = std::fs::remove_dir_all(&raw);
    for f in OUTPUTS {
        let _ = std::fs::remove_file(out.join(f));
    }
    std::fs::create_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("LD_PRELOAD", &lib)
        .env("HAKMEM_SITES", "1")
        .env("HAKMEM_STATS_JSON", raw.join("stats-%p.json"));
    if let Some(n) = opts.sample_bytes {
        cmd.env("HAKMEM_SAMPLE_BYTES", n.to_string());
    }
    let mut child = cmd.spawn().map_err(|e| {
        let _ = std::fs::remove_dir(&raw);
        format!("{program}: {e}")
    })?;
    let pid = u64::from(child.id());
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut stats = Vec::new();
    let mut seen = Vec::new();
    let mut started: Vec<SilentProcess> = Vec::new();
    let entries = std::fs::read_dir(&raw).map_err(|e| e.to_string())?;
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let pid_of = |n: &str| {
            n.strip_prefix("stats-")
                .and_then(|r| r.split('.').next())
                .and_then(|p| p.parse::<u64>().ok())
        };
        if name.ends_with(".started") {
            // `name\nexe\n`, from the preload's set-up in that process.
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut lines = text.lines();
            started.push(SilentProcess {
                pid: pid_of(&name).unwrap_or(0),
                name: lines.next().unwrap_or("?").to_string(),
                exe: lines.next().unwrap_or("?").to_string(),
            });
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|err| err.to_string())?;
        let json: Value =
            serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))?;
        let p = &json["process"];
        let wanted = opts
            .only
            .as_deref()
            .is_none_or(|name| p["name"] == name || p["exe"].as_str().is_some_and(|x| x == name));
        seen.push((
            p["name"].as_str().unwrap_or("?").to_string(),
            p["pid"].as_u64(),
        ));
        if wanted {
            stats.push(json);
        }
    }
    let silent: Vec<SilentProcess> = started
        .into_iter()
        .filter(|s| !seen.iter().any(|(_, p)| *p == Some(s.pid)))
        .collect();
    let ended = match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("was killed by {}", signal_name(sig)),
        (Some(code), _) => format!("exited with status {code}"),
        _ => "ended".into(),
    };
    if stats.is_empty() {
        let _ = std::fs::remove_dir_all(&raw);
        let mut names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names.dedup();
        let message = match opts.only.as_deref() {
            Some(n) if !seen.is_empty() => format!(
                "no process named {n}: the command's processes were {} (the command {ended})",
                names.join(", ")
            ),
            _ if !silent.is_empty() => format!(
                "no process of `{program}` wrote its report: {} set the preload up and wrote nothing: replaced by exec of a program the preload did not enter (a cleared environment, env -i; a static binary), or killed by SIGKILL (the command {ended})",
                silent
                    .iter()
                    .map(|s| format!("{} (pid {})", s.name, s.pid))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => why_nothing_started(program, &ended),
        };
        return Err(RunError {
            message,
            exit_code: if status.success() {
                1
            } else {
                exit_code(&status)
            },
        });
    }
    let mut report = from_stats(program, args, &stats, status.code())?;
    report.signal = status.signal();
    if !status.success() {
        report.notes.push(format!("The command {ended}."));
    }
    for p in report.processes.iter().filter(|p| p.signal.is_some()) {
        report.notes.push(format!(
            "{} (pid {}) crashed with {}: its report was written from the signal handler and holds what it counted up to the crash (partial).",
            p.name,
            p.pid,
            signal_name(p.signal.unwrap_or(0))
        ));
    }
    for s in &silent {
        report.notes.push(format!(
            "{} (pid {}, {}) set the preload up and wrote no report (killed by SIGKILL, or replaced by exec of a program the preload did not enter): its allocations are missing from this report.",
            s.name, s.pid, s.exe
        ));
    }
    if opts.only.is_none()
        && !seen.iter().any(|(_, p)| *p == Some(pid))
        && !silent.iter().any(|s| s.pid == pid)
    {
        report.notes.push(format!(
            "The command's own process (pid {pid}) wrote no report: it never allocated through the preload, or ended without running its exit handlers."
        ));
    }
    report.silent_processes = silent;
    let served: u64 = report.processes.iter().map(|p| p.allocations).sum();
    if served == 0 {
        report
            .notes
            .extend(elf_reason(program).map(|why| format!("{why}.")));
    }
    report.notes.extend(flame_note(&report));
    write(&report, &out, opts.top)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_exactly_when_small_and_never_round_up() {
        assert_eq!(human_bytes(20_000), "20000 B");
        assert_eq!(human_bytes(-512), "-512 B");
        assert_eq!(human_bytes(1_048_572), "1023.9 KiB");
        assert_eq!(human_bytes(1 << 20), "1.0 MiB");
        assert_eq!(human_bytes(5 << 29), "2.50 GiB");
    }

    #[test]
    fn a_guessed_name_keeps_its_offset_and_a_named_function_does_not_need_one() {
        let f = |symbol: &str| Frame {
            symbol: symbol.into(),
            module: "/usr/lib/libsqlite3.so.0".into(),
            file: None,
            line: None,
        };
        assert_eq!(
            frame_label(&f("sqlite3ApiExit+0xd4")),
            "sqlite3ApiExit+0xd4 [libsqlite3.so.0]"
        );
        assert_ne!(
            frame_label(&f("sqlite3ApiExit+0xd4")),
            frame_label(&f("sqlite3ApiExit+0x89"))
        );
        assert_eq!(frame_label(&f("insertdict")), "insertdict");
        assert_eq!(frame_label(&f("0x7f00")), "0x7f00 [libsqlite3.so.0]");
    }

    #[test]
    fn a_rust_site_is_named_by_its_location_and_processes_merge_by_place() {
        let mut sizes = vec![0u64; 24]; // hakmem's SIZE_BUCKETS
        sizes[1] = 2; // 17–32 bytes
        let stats = |pid: u64| {
            serde_json::json!({
                "sites_mode": true, "maps": "",
                "process": { "name": "app", "exe": "app", "pid": pid },
                "sites": [{ "site": 5, "addr": 0, "count": 2, "bytes": 64, "live_bytes": 32,
                    "peak_live_bytes": 64, "temporary": 1, "sizes": sizes,
                    "location": { "file": "src/main.rs", "line": 10, "column": 5 } }],
            })
        };
        let r = from_stats("app", &[], &[stats(2), stats(1)], Some(0)).unwrap();
        assert_eq!(
            r.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(r.sites.len(), 1, "one place, two processes: one row");
        let s = &r.sites[0];
        assert_eq!(s.symbol, "src/main.rs:10:5");
        assert_eq!((s.file.as_deref(), s.line), (Some("src/main.rs"), Some(10)));
        assert_eq!(
            (s.count, s.bytes, s.live_at_exit, s.temporary),
            (4, 128, 64, 2)
        );
        assert_eq!(
            (s.sizes.len(), s.sizes[0].upto, s.sizes[0].count),
            (1, Some(32), 4)
        );
        assert!(r.markdown(5).contains("src/main.rs:10"));
    }

    #[test]
    fn stats_not_from_the_sites_mode_are_refused() {
        let e = from_stats("p", &[], &[serde_json::json!({ "sites": [] })], Some(0)).unwrap_err();
        assert!(e.contains("HAKMEM_SITES"), "{e}");
    }
}
