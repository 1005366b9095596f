//! `hakprof sites`: who allocates what in any program. The program runs under the preload
//! in the sites mode (`HAKMEM_SITES=1`: every C-ABI allocation counted per call site, its
//! return address kept; a Rust `alloc_at` site by its source location) and writes its
//! stats JSON at exit with its mappings (`/proc/self/maps`). Symbolization happens here,
//! after the run, never inside the allocator (`symbols`).
//!
//! Stacks come from the preload's DWARF unwinder (no frame pointers needed; 32 frames at
//! most): each site keeps the stack of its first allocation, and allocations are sampled
//! by bytes (one every 256 KiB on average) with their stacks, which tell apart the callers
//! of a wrapper like `xmalloc`. Two allocation flamegraphs are drawn with inferno: bytes
//! allocated by sampled stack (`sites.svg`), and bytes live at the heap's peak by site
//! stack (`sites-peak.svg`: the peak is counted per site). Every process the command starts
//! writes its own stats; the report merges them (sites of one function and line are one
//! row) and lists the processes.

use crate::flame;
use crate::symbols::{parse_maps, Frame, Mapping, Symbolizer};
use microbench::native;
use microbench::table::{self, Table};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sizes in one power-of-two bucket (`upto`: the bucket's largest size; none for the
/// last bucket, above 64 MiB).
#[derive(Clone, Debug, Serialize)]
pub struct SizeBucket {
    pub upto: Option<u64>,
    pub count: u64,
}

/// One call site, symbolized: the function that called `malloc` (`symbol`, `file`,
/// `line`), and what the sites mode counted there, summed over the processes it ran in.
#[derive(Clone, Debug, Serialize)]
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
    /// Allocations freed by their thread before it allocated anything else (heaptrack's
    /// "temporary allocations").
    pub temporary: u64,
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

/// A sampled allocation stack (one every `sample_interval` bytes on average, jittered):
/// its weight estimates the bytes allocated through it.
#[derive(Clone, Debug, Serialize)]
pub struct SampledStack {
    pub process: String,
    pub weight: u64,
    pub samples: u64,
    /// The caller of `malloc` first (inlined functions as frames of their own).
    pub stack: Vec<Frame>,
}

/// One process the command started, from its exit report.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessRow {
    pub name: String,
    pub pid: u64,
    pub elapsed_s: f64,
    pub peak_rss_kib: u64,
    pub allocations: u64,
    pub bytes: u64,
    /// The C-ABI heap's live bytes at its peak snapshot.
    pub heap_peak_bytes: i64,
}

#[derive(Clone, Debug, Serialize)]
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
    /// The mean bytes between two stack samples.
    pub sample_interval: u64,
    /// Every sampled stack, heaviest first: what `sites.svg` draws.
    pub sampled_stacks: Vec<SampledStack>,
    /// The weight of samples that found the stack table full (1024 stacks per process).
    pub dropped_sample_bytes: u64,
}

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

/// One process's sampled stacks, symbolized.
fn process_samples(json: &Value, sym: &mut Symbolizer) -> Vec<SampledStack> {
    let maps = parse_maps(json["maps"].as_str().unwrap_or(""));
    let name = json["process"]["name"].as_str().unwrap_or("?");
    let samples = &json["stack_samples"]["stacks"];
    samples
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| SampledStack {
            process: name.to_string(),
            weight: s["weight"].as_u64().unwrap_or(0),
            samples: s["samples"].as_u64().unwrap_or(0),
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
    // Stacks that differ only in return addresses within the same functions are one.
    // (As the flamegraph and the table label them: a symbol's offset dropped.)
    let mut by_stack: HashMap<(String, Vec<String>), SampledStack> = HashMap::new();
    for s in sampled_stacks {
        let key = (s.process.clone(), s.stack.iter().map(frame_label).collect());
        match by_stack.get_mut(&key) {
            Some(a) => {
                a.weight += s.weight;
                a.samples += s.samples;
            }
            None => {
                by_stack.insert(key, s);
            }
        }
    }
    let mut sampled_stacks: Vec<SampledStack> = by_stack.into_values().collect();
    sampled_stacks.sort_by_key(|s| std::cmp::Reverse(s.weight));
    let sample_interval = stats
        .iter()
        .find_map(|j| j["stack_samples"]["interval"].as_u64())
        .unwrap_or(0);
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
        sampled_stacks,
        dropped_sample_bytes,
    })
}

/// Bytes as people read them: `512 B`, `48.0 KiB`, `3.0 MiB`, `1.2 GiB`.
pub fn human_bytes(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    match a {
        a if a < 1024.0 => format!("{n} B"),
        a if a < 1024.0 * 1024.0 => format!("{sign}{:.1} KiB", a / 1024.0),
        a if a < 1024.0 * 1024.0 * 1024.0 => format!("{sign}{:.1} MiB", a / 1048576.0),
        a => format!("{sign}{:.2} GiB", a / 1073741824.0),
    }
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

/// A frame as a flamegraph label: the function (a symbol's `+0x…` offset dropped, so one
/// function is one frame), or the address and `[module]` when it has no name.
fn frame_label(f: &Frame) -> String {
    let s = if f.symbol.starts_with("0x") {
        format!("{} [{}]", f.symbol, module_name(&f.module))
    } else {
        match f.symbol.rsplit_once("+0x") {
            Some((name, off)) if off.bytes().all(|b| b.is_ascii_hexdigit()) => name.into(),
            _ => f.symbol.clone(),
        }
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
    pub fn folded(&self, weight: fn(&SiteRow) -> i64) -> String {
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

    /// Folded sampled stacks, each under its process's name, weighted by the bytes each
    /// stands for.
    pub fn folded_samples(&self) -> String {
        let mut out = String::new();
        for s in &self.sampled_stacks {
            out += &folded_line(&s.process, &s.stack, s.weight);
        }
        out
    }

    /// The heaviest `n` sampled stacks: estimated bytes and the first frames.
    pub fn stacks_table(&self, n: usize) -> Table {
        let mut t = Table::new(&[
            "stack (caller of malloc ← its callers)",
            "process",
            "est. bytes",
            "samples",
        ]);
        for s in self.sampled_stacks.iter().take(n) {
            let frames: Vec<String> = s.stack.iter().take(6).map(frame_label).collect();
            let more = if s.stack.len() > 6 { " ← …" } else { "" };
            t.push(vec![
                format!("{}{more}", frames.join(" ← ")),
                s.process.clone(),
                human_bytes(s.weight as i64),
                s.samples.to_string(),
            ]);
        }
        t
    }

    /// The Markdown page: the processes, then the top sites.
    pub fn markdown(&self, top: usize) -> String {
        format!(
            "# Call sites of `{}`\n\n{}{}\n\n{}\n## Top sites by bytes\n\n{}\n## Heaviest sampled stacks\n\n{}\n\n{}\n{}\n",
            self.command_line(),
            self.notes.iter().map(|n| format!("**{n}**\n\n")).collect::<String>(),
            SUMMARY,
            self.process_table().markdown(),
            self.table(top).markdown(),
            self.sample_note(),
            self.stacks_table(top.min(10)).markdown(),
            FLAMES,
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
        format!(
            "One allocation sampled every {} allocated on average (jittered), its stack unwound and weighted with the bytes since the last sample, so a stack's weight estimates the bytes allocated through it (as jemalloc's heap profiler does).{dropped}",
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
        struct Page {
            css: &'static str,
            command: String,
            notes: Vec<String>,
            summary: &'static str,
            processes: String,
            sites: String,
            sample_note: String,
            stacks: String,
            flames: &'static str,
        }
        let page = Page {
            css: include_str!("../templates/report.css"),
            command: self.command_line(),
            notes: self.notes.clone(),
            summary: SUMMARY,
            processes: self.process_table().html(),
            sites: self.table(top).html(),
            sample_note: self.sample_note(),
            stacks: self.stacks_table(top.min(10)).html(),
            flames: FLAMES,
        };
        let mut tt = table::template_engine();
        tt.add_template("sites", include_str!("../templates/sites.html"))
            .expect("the sites template parses");
        tt.render("sites", &page)
            .expect("the sites page always renders")
    }
}

const SUMMARY: &str = "Every allocation through the C ABI, counted per call site in hakmem's sites mode (HAKMEM_SITES=1), in every process the command started; sites of one function and line are one row. Sorted by bytes. Temporary: freed by its thread before the thread allocated again. Live at heap peak: at the last snapshot of the heap's peak, within 1/64 of it. hakmem's policy: for big blocks, the threshold last chosen, the UCB1 arm adopted (research mode) and the BigCache's hits.";

const FLAMES: &str = "sites.svg: the allocation flamegraph from the sampled stacks, frame widths in bytes allocated (estimated; a run too short for a sample draws each site's bytes on the stack of its first allocation instead, and says so above); sites-peak.svg: bytes live at the heap's peak, drawn on each site's stack of its first allocation (one DWARF unwind per site, 32 frames at most), since the peak is counted per site, not per stack.";

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

/// Writes `sites.json`, `sites.md`, `sites.html`, `sites.svg` and `sites-peak.svg` into
/// `out`.
pub fn write(report: &SitesReport, out: &Path, top: usize) -> Result<(), String> {
    let put = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    let pretty = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    put("sites.json", pretty.as_bytes())?;
    put("sites.md", report.markdown(top).as_bytes())?;
    put("sites.html", report.html(top).as_bytes())?;
    let title = |what: &str| format!("{what}: {}", report.command_line());
    // The sampled stacks where there are any (a run of under one interval has none: then
    // each site's first stack, as `flame_note` says).
    let (by_bytes, what) = match report.folded_samples() {
        s if s.is_empty() => (
            report.folded(|r| r.bytes as i64),
            "bytes allocated, on each site's first stack (no stack was sampled)",
        ),
        s => (s, "bytes allocated by call stack (sampled)"),
    };
    let draw = |folded: &str, what: &str| {
        if folded.is_empty() {
            Ok(empty_svg(&title(what), "no allocation was counted"))
        } else {
            flame::svg(folded, &title(what), "bytes")
        }
    };
    put("sites.svg", &draw(&by_bytes, what)?)?;
    let at_peak = report.folded(|r| r.live_at_peak);
    put(
        "sites-peak.svg",
        &draw(&at_peak, "bytes live at the heap's peak, by site stack")?,
    )
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
            "No stack was sampled ({} allocated, under the sampling interval): sites.svg draws each site's bytes on the stack of its first allocation, so callers that share a site are not told apart.",
            human_bytes(bytes as i64)
        )
    })
}

/// The outputs of a run, removed before the next one so none is left stale.
const OUTPUTS: [&str; 5] = [
    "sites.json",
    "sites.md",
    "sites.html",
    "sites.svg",
    "sites-peak.svg",
];

/// Runs `program args` under the preload in the sites mode (its children too); with
/// `only`, keeps the processes of that name (comm or executable file name). Writes the
/// report's files into `out`; returns the report.
pub fn run(
    program: &str,
    args: &[String],
    out: &Path,
    top: usize,
    only: Option<&str>,
) -> Result<SitesReport, String> {
    use std::os::unix::process::ExitStatusExt;
    let lib = native::hakmem()?.lib.ok_or("hakmem has no library")?;
    let raw: PathBuf = out.join("raw");
    // Stats and pages of an earlier run must not join this one or outlive it.
    let _ = std::fs::remove_dir_all(&raw);
    for f in OUTPUTS {
        let _ = std::fs::remove_file(out.join(f));
    }
    std::fs::create_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let mut child = Command::new(program)
        .args(args)
        .env("LD_PRELOAD", &lib)
        .env("HAKMEM_SITES", "1")
        .env("HAKMEM_STATS_JSON", raw.join("stats-%p.json"))
        .spawn()
        .map_err(|e| {
            let _ = std::fs::remove_dir(&raw);
            format!("{program}: {e}")
        })?;
    let pid = u64::from(child.id());
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut stats = Vec::new();
    let mut seen = Vec::new();
    let entries = std::fs::read_dir(&raw).map_err(|e| e.to_string())?;
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).map_err(|err| err.to_string())?;
        let json: Value =
            serde_json::from_str(&text).map_err(|err| format!("{}: {err}", e.path().display()))?;
        let p = &json["process"];
        let wanted = only
            .is_none_or(|name| p["name"] == name || p["exe"].as_str().is_some_and(|x| x == name));
        seen.push((
            p["name"].as_str().unwrap_or("?").to_string(),
            p["pid"].as_u64(),
        ));
        if wanted {
            stats.push(json);
        }
    }
    let ended = match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        (Some(code), _) => format!("exited with status {code}"),
        _ => "ended".into(),
    };
    if stats.is_empty() {
        let _ = std::fs::remove_dir(&raw); // when empty
        let mut names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names.dedup();
        return Err(match only {
            Some(n) if !seen.is_empty() => format!(
                "no process named {n}: the command's processes were {} (the command {ended})",
                names.join(", ")
            ),
            _ => format!(
                "no process of `{program}` wrote its stats (the command {ended}; a process killed by a signal writes none)"
            ),
        });
    }
    let mut report = from_stats(program, args, &stats, status.code())?;
    report.signal = status.signal();
    if !status.success() {
        report.notes.push(format!("The command {ended}."));
    }
    if only.is_none() && !seen.iter().any(|(_, p)| *p == Some(pid)) {
        report.notes.push(format!(
            "The command's own process (pid {pid}) wrote no stats ({}): its allocations are missing from this report.",
            if status.signal().is_some() { "killed by a signal" } else { "it ended without running its exit handlers" }
        ));
    }
    report.notes.extend(flame_note(&report));
    write(&report, out, top)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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
