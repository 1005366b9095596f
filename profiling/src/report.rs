//! `hakprof report`: every step's tables and pictures in one place — `report.md` and
//! `index.html` (machine, counter availability, tables, a bar chart, the flamegraphs).

use crate::ablation::{self, Cell};
use crate::attrib::PathAttributions;
use crate::counters::{self, Measurement};
use crate::events::Availability;
use crate::machine::Machine;
use crate::syscalls::{self, Census};
use microbench::table::{template_engine, Table};
use serde::Serialize;
use std::fmt::Write;

/// A flamegraph file (relative to the report), or why there is none.
pub struct Picture {
    pub title: String,
    pub file: Result<String, String>,
}

/// A finding of the original's overhead analysis, set beside what is measured here.
#[derive(Clone, Debug, Serialize)]
pub struct Claim {
    pub claim: String,
    /// The original's figure, as it stated it.
    pub original: String,
    /// Ours, with where it comes from.
    pub measured: String,
    /// "holds", "refuted" or "not comparable", with the reason.
    pub verdict: String,
}

pub struct Report {
    pub machine: Machine,
    pub quick: bool,
    pub availability: Availability,
    pub counters: Vec<Measurement>,
    /// Each path's instructions and simulated misses split into steps (callgrind), or why not.
    pub steps: PathAttributions,
    /// Time per step by subtraction: (path, step time).
    pub step_times: Vec<(String, crate::subtract::StepTime)>,
    pub claims: Vec<Claim>,
    /// Does learning pay? (None: not run.)
    pub learning: Option<crate::learning::Study>,
    pub pictures: Vec<Picture>,
    pub ablation: Vec<Cell>,
    pub syscalls: Result<Vec<Census>, String>,
    /// `hakprof sites` on C program scenarios: (program, its report or why not).
    pub sites: Vec<(String, Result<crate::sites::SitesReport, String>)>,
    /// Thread scaling of the multi-threaded programs, or why not.
    pub scaling: Result<microbench::scaling::Sweep, String>,
    /// Resident memory for almost nothing, per allocator, and hakmem's by holder.
    pub footprint: Option<crate::footprint::Study>,
}

/// Sites listed per program in the report's call-site section.
const SITES_TOP: usize = 5;

impl Report {
    pub fn hardware_line(&self) -> String {
        if self.availability.hardware_complete() {
            "Hardware counters: available (cycles, instructions, branch misses, L1D and LLC read misses).".into()
        } else {
            let missing: Vec<String> = self
                .availability
                .unavailable
                .iter()
                .map(|(e, errno, _)| format!("{e} ({})", std::io::Error::from_raw_os_error(*errno)))
                .collect();
            format!(
                "Hardware counters: **unavailable on this host** — {}. Their columns read n/a; cycles come from the TSC (calibrated against the monotonic clock) and cache misses are **simulated** by valgrind (columns marked \"sim\").",
                missing.join(", ")
            )
        }
    }

    /// The measured time per operation of probe `name` (counters), if it ran.
    fn ns_of(&self, name: &str) -> Option<f64> {
        self.counters.iter().find(|m| m.probe == name).map(|m| m.ns)
    }

    /// The time by subtraction of `step` on `path`, if measured.
    fn step_ns(&self, path: &str, step: &str) -> Option<crate::attrib::StepNs> {
        self.step_times
            .iter()
            .find(|(p, t)| p == path && t.step == step)
            .map(|(_, t)| (t.ns, t.ns_ci))
    }

    pub fn step_table(&self) -> Table {
        crate::attrib::table(&self.steps, |p| self.ns_of(p), |p, s| self.step_ns(p, s))
    }

    /// The claims table: the original's figure, ours, the verdict.
    pub fn claims_table(&self) -> Table {
        let mut t = Table::new(&[
            "claim of the original",
            "original",
            "measured here",
            "verdict",
        ]);
        for c in &self.claims {
            t.push(vec![
                c.claim.clone(),
                c.original.clone(),
                c.measured.clone(),
                c.verdict.clone(),
            ]);
        }
        t
    }

    /// The whole report as data (`report.json`): `steps` holds one object per attributed
    /// path with `total_ir`, `total_ns`, `residual_ir`, `residual_ns` and `steps` (a list of
    /// `{ step, ir, ns, ns_ci, l1_misses, ll_misses }`; Σ ir + residual_ir = total_ir).
    /// `ns` and `ns_ci` come from the subtraction (null for a step that cannot be taken out
    /// of the path); `residual_ns` is the path's time less the timed steps, signed.
    pub fn json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut steps = serde_json::Map::new();
        for (path, a) in &self.steps {
            let v = match a {
                Ok(a) => json!({
                    "path": path,
                    "total_ir": a.total.ir,
                    "total_ns": self.ns_of(path),
                    "total_l1_misses": a.total.l1_misses,
                    "total_ll_misses": a.total.ll_misses,
                    "residual_ir": a.residual.ir,
                    "residual_ns": crate::attrib::residual_ns(a, self.ns_of(path), |p, s| self.step_ns(p, s)),
                    "residual_sources": a.residual_sources,
                    "steps": a.steps.iter().map(|(s, c)| json!({
                        "step": s,
                        "ir": c.ir,
                        "ns": self.step_ns(path, s).map(|t| t.0),
                        "ns_ci": self.step_ns(path, s).map(|t| [t.1 .0, t.1 .1]),
                        "l1_misses": c.l1_misses,
                        "ll_misses": c.ll_misses,
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => json!({ "path": path, "error": e }),
            };
            steps.insert(path.clone(), v);
        }
        let m = &self.machine;
        json!({
            "machine": { "cpu": m.cpu, "cores": m.cores, "kernel": m.kernel, "date": m.date },
            "quick": self.quick,
            "hardware": self.hardware_line(),
            "counters": serde_json::from_str::<serde_json::Value>(&counters::to_json(&self.counters)).unwrap_or_default(),
            "steps": steps,
            "claims": self.claims,
            "learning": self.learning.as_ref().map(|l| l.json()),
            "ablation": self.ablation.iter().map(|c| json!({
                "config": c.config,
                "workload": c.workload,
                "result": match &c.result { Ok(v) => v.clone(), Err(e) => json!({ "error": e }) },
            })).collect::<Vec<_>>(),
            "syscalls": match &self.syscalls {
                Ok(cs) => cs.iter().map(|c| json!({
                    "scenario": c.scenario,
                    "hakmem": c.ours,
                    "strace": c.strace,
                    "hakmem_allocations": c.hakmem_allocations,
                })).collect::<Vec<_>>(),
                Err(_) => vec![],
            },
            "footprint": self.footprint.as_ref().map(|f| json!({
                "cells": f.cells,
                "peaks": f.peaks,
                "rounds": f.rounds,
                "errors": f.errors,
            })),
            "scaling": match &self.scaling {
                Ok(sw) => json!({
                    "cores": sw.cores,
                    "threads": sw.threads,
                    "rounds": sw.rounds,
                    "seconds": sw.seconds,
                    "programs": sw.programs().iter().map(|&p| json!({
                        "program": p,
                        "points": sw.threads.iter().map(|&t| json!({
                            "threads": t,
                            "hakmem_mops": sw.median(p, "hakmem", t),
                            "best_peer": sw.best_peer(p, t).map(|b| b.1),
                            "best_peer_mops": sw.best_peer(p, t).map(|b| b.0),
                            "best_peer_over_hakmem": sw.behind(p, t),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
                Err(e) => json!({ "error": e }),
            },
            "sites": self.sites.iter().map(|(program, r)| match r {
                Ok(r) => json!({
                    "program": program,
                    "processes": r.processes,
                    "top": r.sites.iter().take(SITES_TOP).map(|s| json!({
                        "symbol": s.symbol, "module": s.module, "count": s.count,
                        "bytes": s.bytes, "peak_live_bytes": s.peak_live_bytes,
                        "live_at_peak": s.live_at_peak, "live_at_exit": s.live_at_exit,
                        "temporary": s.temporary,
                    })).collect::<Vec<_>>(),
                    "sites": r.sites.len(),
                    "sampled_stacks": r.sampled_stacks.len(),
                }),
                Err(e) => json!({ "program": program, "error": e }),
            }).collect::<Vec<_>>(),
        })
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let quick = if self.quick {
            " (QUICK run: fewer probes and iterations)"
        } else {
            ""
        };
        let mut s = String::new();
        let _ = writeln!(s, "# hakprof report\n");
        let _ = writeln!(
            s,
            "Machine: {}, {} cores, Linux {}. Generated {}{quick}.\n",
            m.cpu, m.cores, m.kernel, m.date
        );
        let _ = writeln!(s, "{}\n", self.hardware_line());
        if let Some(n) = self.availability.notice() {
            let _ = writeln!(s, "```\n{n}```\n");
        }
        let _ = writeln!(s, "Every probe is confirmed before it is measured: \"served by\" names the allocator whose own ownership test claimed the block (hakmem: its counters moved too).\n");
        let counters = counters::table(&self.counters).markdown();
        let _ = writeln!(s, "## Counters per operation\n\n{counters}");
        let _ = writeln!(s, "![ns per operation](bars.svg)\n");
        let steps = self.step_table().markdown();
        let _ = writeln!(
            s,
            "## Where the nanoseconds go: the two models, step by step\n\n{STEPS_NOTE}\n\n{steps}"
        );
        let _ = writeln!(
            s,
            "![steps](steps.svg)\n\n![the original's timeline beside this run](timeline.svg)\n"
        );
        let claims = self.claims_table().markdown();
        let _ = writeln!(s, "## The original's claims, checked\n\n{claims}");
        if let Some(l) = &self.learning {
            let _ = writeln!(
                s,
                "## Does learning pay?\n\n{LEARNING_NOTE}\n\n**{}**\n\n{}\n![cost](learning_cost.svg)\n\n![ELO ratings](learning_elo.svg)\n\n![thresholds per site](learning_thresholds.svg)\n",
                l.verdict(),
                l.table().markdown()
            );
            for (title, text, table) in l.sections() {
                let _ = writeln!(s, "### {title}\n\n{text}\n\n{}", table.markdown());
            }
        }
        let _ = writeln!(s, "## Flamegraphs\n");
        for p in &self.pictures {
            let _ = match &p.file {
                Ok(f) => writeln!(s, "- [{}]({f})", p.title),
                Err(e) => writeln!(s, "- {}: not drawn: {e}", p.title),
            };
        }
        let ablation = ablation::table(&self.ablation).markdown();
        let _ = writeln!(s, "\n## Ablation (feature isolation)\n\n{ablation}");
        let _ = match &self.syscalls {
            Ok(c) => writeln!(
                s,
                "## Syscalls per scenario\n\n{}",
                syscalls::table(c).markdown()
            ),
            Err(e) => writeln!(s, "## Syscalls per scenario\n\nnot measured: {e}\n"),
        };
        if let Some(f) = &self.footprint {
            let _ = writeln!(s, "## Footprint\n\n{FOOTPRINT_NOTE}\n\n{}", f.markdown());
        }
        let _ = writeln!(s, "## Thread scaling\n\n{SCALING_NOTE}\n");
        match &self.scaling {
            Ok(sw) => {
                let _ = writeln!(
                    s,
                    "{} cores, threads {:?}, {} round(s) of {} s each, medians.\n",
                    sw.cores, sw.threads, sw.rounds, sw.seconds
                );
                for p in sw.programs() {
                    let _ = writeln!(
                        s,
                        "### {p}\n\n{}\n![{p}: throughput by threads](scaling-{p}.svg)\n",
                        sw.table(p).markdown()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(s, "not run: {e}\n");
            }
        }
        if !self.sites.is_empty() {
            let _ = writeln!(
                s,
                "## Call sites of the program scenarios\n\n{SITES_NOTE}\n"
            );
        }
        for (program, r) in &self.sites {
            let _ = match r {
                Ok(r) => writeln!(
                    s,
                    "### {program}\n\n{}\n[the call-site page](sites/{program}/sites.html) · ![bytes by call stack](sites/{program}/sites.svg)\n",
                    r.table(SITES_TOP).markdown()
                ),
                Err(e) => writeln!(s, "### {program}\n\nnot run: {e}\n"),
            };
        }
        s
    }

    /// `index.html`, from `templates/report.html` (every value escaped; tables rendered by
    /// `Table::html`).
    pub fn html(&self) -> String {
        let m = &self.machine;
        let page = HtmlPage {
            css: CSS,
            cpu: &m.cpu,
            cores: m.cores,
            kernel: &m.kernel,
            date: &m.date,
            quick: self.quick,
            hardware_class: if self.availability.hardware_complete() {
                "ok"
            } else {
                "warn"
            },
            hardware_line: self.hardware_line(),
            counters: counters::table(&self.counters).html(),
            steps: self.step_table().html(),
            steps_note: STEPS_NOTE,
            claims: self.claims_table().html(),
            learning_note: LEARNING_NOTE,
            learning_verdict: self.learning.as_ref().map(|l| l.verdict()),
            learning: self.learning.as_ref().map(|l| l.table().html()),
            learning_sections: self
                .learning
                .as_ref()
                .map(|l| {
                    l.sections()
                        .into_iter()
                        .map(|(title, text, table)| Section {
                            title,
                            text: text.trim_matches('*').to_string(),
                            table: table.html(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            pictures: self
                .pictures
                .iter()
                .map(|p| PictureView {
                    title: &p.title,
                    file: p.file.as_ref().ok().map(String::as_str),
                    error: p.file.as_ref().err().map(String::as_str),
                })
                .collect(),
            ablation: ablation::table(&self.ablation).html(),
            syscalls: self
                .syscalls
                .as_ref()
                .ok()
                .map(|c| syscalls::table(c).html()),
            syscalls_error: self.syscalls.as_ref().err().map(String::as_str),
            footprint_note: FOOTPRINT_NOTE,
            footprint: self.footprint.as_ref().map(|f| {
                format!(
                    "{}{}{}",
                    f.rss_table().html(),
                    f.split_table().html(),
                    f.peak_table().html()
                )
            }),
            scaling_note: SCALING_NOTE,
            scaling: match &self.scaling {
                Ok(sw) => sw
                    .programs()
                    .iter()
                    .map(|&p| ScalingView {
                        program: p,
                        table: sw.table(p).html(),
                        chart: format!("scaling-{p}.svg"),
                    })
                    .collect(),
                Err(_) => Vec::new(),
            },
            scaling_error: self.scaling.as_ref().err().map(String::as_str),
            sites_note: SITES_NOTE,
            sites: self
                .sites
                .iter()
                .map(|(program, r)| SitesView {
                    program,
                    table: r.as_ref().ok().map(|r| r.table(SITES_TOP).html()),
                    error: r.as_ref().err().map(String::as_str),
                })
                .collect(),
        };
        let mut tt = template_engine();
        tt.add_template("report", TEMPLATE)
            .expect("the report template parses");
        tt.render("report", &page)
            .expect("the report always renders")
    }
}

const TEMPLATE: &str = include_str!("../templates/report.html");

/// What the learning study is, said once for the Markdown and the HTML.
const LEARNING_NOTE: &str = "Three call sites in one process, two phases of 60 rounds: site A reuses a 1 MiB buffer, site B makes one-shot 1 MiB buffers (each freed 50 buffers later), site C grows a block from 64 KiB to 8 MiB; then A and B swap roles. Each configuration runs 3 times, alternated, in a child process, and the table holds the medians: the learner as users get it (balanced), choosing huge pages per site (HAKMEM_THP=site) and in research mode, each of the ELO's 12 thresholds fixed (HAKMEM_THRESHOLD_KB) without and with huge pages for every big block (HAKMEM_THP=0|1), and the peers. Cost = 0.4 CPU time + 0.3 page faults + 0.3 peak RSS, each over the best hakmem run's (the learner's own weights); page faults in 4 KiB equivalents (a huge-page fault counts as the 512 small ones it replaces: it writes as much memory, and its saving in traps shows in the CPU time).";

/// How the step table is made, said once for the Markdown and the HTML.
const STEPS_NOTE: &str = "Each path ran under callgrind (instruction level, cache simulation with explicit sizes); every instruction it executed is attributed to one step by the chain of inlined frames its address has in the DWARF (the innermost frame of our code that a step names; toolchain code inlined into ours counts for the code that used it). So the steps and the residual add up to the path's instructions exactly. Time per step is by subtraction: the reuse path built without one of its own steps (the allocator's alloc_steps/free_steps, the same code with that step folded away), timed interleaved with the full path round after round; median of the differences and its 95 % interval. The pool steps cannot be taken out of a working path (–), so the residual's time is the path's measured time less the timed steps: the pool's work, and the overlap a real CPU gives steps.";
const CSS: &str = include_str!("../templates/report.css");

/// What the footprint section is.
const FOOTPRINT_NOTE: &str = "microbench/c/footprint.c under every allocator (LD_PRELOAD, each run's allocator checked): no allocation of its own (stdio's buffers only), one 64-byte allocation, 1 and 8 threads that each made two small allocations and are still alive; its resident set (VmRSS) at the end, medians. Under hakmem its exit report (HAKMEM_FOOTPRINT=1) splits hakmem's part by holder, each measured with mincore on hakmem's own regions (resident pages, not mapped ones); 'everything else' is the process's RSS less those: the program, libc, the loader, code pages (hakmem's included) and stacks. Then three program benchmarks at their peak: each allocator's peak RSS (/usr/bin/time), and hakmem's part by holder as the footprint mode measured it when the process's resident set was largest (within 1/32 and a clock tick).";

/// What the thread-scaling section is.
const SCALING_NOTE: &str = "The multi-threaded programs of microbench/c/scaling (make bench-scaling runs the same sweep): each runs for a fixed time at each thread count under every allocator (LD_PRELOAD, each run's allocator confirmed), allocators alternated within each round. Throughput in millions of operations per second; best peer ÷ hakmem above 1 means hakmem is behind. Thread counts above the machine's cores are oversubscribed (hollow points over the shaded band). hakmem's column of remote-free work comes from its stats: remote frees per operation, blocks per batch sent (one compare-and-swap each), blocks per collection by the owner.";

/// What the call-site section is.
const SITES_NOTE: &str = "hakprof sites on three of the C program benchmarks (the C ABI under LD_PRELOAD, the sites mode): each program's top sites by bytes, with its page (every site, the sampled stacks) and its allocation flamegraph. The programs are built without debug info, so sites are named by the nearest symbol and offset.";

/// A titled table with a line of text (the learning study's extra sections).
#[derive(Serialize)]
struct Section {
    title: String,
    text: String,
    table: String,
}

#[derive(Serialize)]
struct ScalingView {
    program: &'static str,
    table: String,
    chart: String,
}

#[derive(Serialize)]
struct SitesView<'a> {
    program: &'a str,
    table: Option<String>,
    error: Option<&'a str>,
}

/// What the HTML template reads.
#[derive(Serialize)]
struct HtmlPage<'a> {
    css: &'static str,
    cpu: &'a str,
    cores: usize,
    kernel: &'a str,
    date: &'a str,
    quick: bool,
    hardware_class: &'static str,
    hardware_line: String,
    counters: String,
    steps: String,
    steps_note: &'static str,
    claims: String,
    learning_note: &'static str,
    learning_verdict: Option<String>,
    learning: Option<String>,
    learning_sections: Vec<Section>,
    pictures: Vec<PictureView<'a>>,
    ablation: String,
    syscalls: Option<String>,
    footprint_note: &'static str,
    footprint: Option<String>,
    scaling_note: &'static str,
    scaling: Vec<ScalingView>,
    scaling_error: Option<&'a str>,
    sites_note: &'static str,
    sites: Vec<SitesView<'a>>,
    syscalls_error: Option<&'a str>,
}

#[derive(Serialize)]
struct PictureView<'a> {
    title: &'a str,
    file: Option<&'a str>,
    error: Option<&'a str>,
}

/// Text for SVG and HTML attributes and content.
pub use microbench::chart::esc;

/// A horizontal bar chart (SVG) of ns per operation.
pub fn bar_chart(bars: &[(String, f64)], title: &str) -> String {
    bar_chart_in(bars, title, " ns", 2)
}

/// A horizontal bar chart (SVG): each value printed with `decimals` and `unit`.
pub fn bar_chart_in(bars: &[(String, f64)], title: &str, unit: &str, decimals: usize) -> String {
    let max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(1e-9);
    let (row, left, width) = (22.0, 230.0, 560.0);
    let h = 40.0 + row * bars.len() as f64;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        left + width + 90.0,
        esc(title)
    );
    for (i, (label, ns)) in bars.iter().enumerate() {
        let y = 32.0 + row * i as f64;
        let w = (ns / max * width).max(1.0);
        let color =
            if label.contains("hakmem") || label.ends_with("_path") || label.starts_with("learned")
            {
                "#d9534f"
            } else {
                "#5b8fd9"
            };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{ns:.decimals$}{unit}</text>",
            left - 6.0,
            y + 13.0,
            esc(label),
            row - 6.0,
            left + w + 4.0,
            y + 13.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The original's fast-path timeline beside this run: on the left the time per operation
/// (the original's 31 ns hakmem and 9 ns mimalloc-style paths, drawn by hand, and the two
/// paths measured here), on the right each measured path's instructions stacked by step
/// (exact, from the attribution). SVG.
pub fn timeline_chart(
    ns: &[(&str, Option<f64>)],
    stacks: &[(&str, &crate::attrib::Attribution)],
) -> String {
    const COLORS: [&str; 13] = [
        "#d9534f", "#f0ad4e", "#5cb85c", "#5bc0de", "#337ab7", "#9b59b6", "#e67e22", "#1abc9c",
        "#95a5a6", "#34495e", "#c0392b", "#7f8c8d", "#2c3e50",
    ];
    let (row, label_w, bar_w) = (26.0, 190.0, 300.0);
    let steps: Vec<&str> = crate::attrib::STEPS.to_vec();
    let color = |step: &str| {
        steps
            .iter()
            .position(|s| *s == step)
            .map_or("#bbbbbb", |i| COLORS[i % COLORS.len()])
    };
    let h = 70.0 + row * (ns.len().max(stacks.len()) as f64) + 20.0 * 7.0;
    let right = label_w + bar_w + 80.0;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">ns per operation: the original's timeline and this run</text>\n<text x=\"{right}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">instructions per operation by step (exact)</text>\n",
        2.0 * right
    );
    let max_ns = ns.iter().filter_map(|b| b.1).fold(1e-9f64, f64::max);
    for (i, (label, v)) in ns.iter().enumerate() {
        let y = 36.0 + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(label)
        );
        let _ = match v {
            Some(v) => {
                let w = (v / max_ns * bar_w).max(1.0);
                let fill = if label.starts_with("original") {
                    "#bbbbbb"
                } else {
                    "#d9534f"
                };
                writeln!(s, "<rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{fill}\"/><text x=\"{}\" y=\"{}\">{v:.2} ns</text>", row - 8.0, label_w + w + 4.0, y + 14.0)
            }
            None => writeln!(
                s,
                "<text x=\"{label_w}\" y=\"{}\">not measured</text>",
                y + 14.0
            ),
        };
    }
    let max_ir = stacks
        .iter()
        .map(|(_, a)| a.total.ir)
        .fold(1e-9f64, f64::max);
    let mut used: Vec<&str> = Vec::new();
    for (i, (label, a)) in stacks.iter().enumerate() {
        let y = 36.0 + row * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            right + label_w - 6.0,
            y + 14.0,
            esc(label)
        );
        let mut x = right + label_w;
        let parts = a
            .steps
            .iter()
            .map(|(n, c)| (n.as_str(), c.ir))
            .chain([("residual", a.residual.ir)]);
        for (step, ir) in parts {
            let w = ir / max_ir * bar_w;
            if w <= 0.0 {
                continue;
            }
            if !used.contains(&step) {
                used.push(step);
            }
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"><title>{}: {ir:.2}</title></rect>",
                row - 8.0,
                color(step),
                esc(step)
            );
            x += w;
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\">{:.1}</text>",
            x + 4.0,
            y + 14.0,
            a.total.ir
        );
    }
    // The legend: one swatch per step drawn.
    let top = 46.0 + row * (ns.len().max(stacks.len()) as f64);
    for (i, step) in used.iter().enumerate() {
        let (col, line) = (i % 2, i / 2);
        let x = right + label_w * 0.3 + col as f64 * 240.0;
        let y = top + 20.0 * line as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            color(step),
            x + 16.0,
            y + 11.0,
            esc(step)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::RawCounts;
    use crate::events::{Availability, EventKind};
    use std::collections::BTreeMap;

    fn report(avail: Availability, counts: &[(EventKind, u64)]) -> Report {
        let raw = RawCounts {
            ops: 1000,
            elapsed_ns: 7000,
            tsc_ticks: Some(17_500),
            tsc_per_ns: Some(2.5),
            values: counts
                .iter()
                .map(|&(e, c)| (e, (c, 10, 10)))
                .collect::<BTreeMap<_, _>>(),
        };
        Report {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                kernel: "6.1".into(),
                date: "2026-01-01".into(),
            },
            quick: false,
            availability: avail,
            counters: vec![Measurement::from_raw("pool_path", "hakmem", &raw, None)],
            steps: vec![("pool_path".into(), Ok(attribution()))],
            step_times: vec![(
                "pool_path".into(),
                crate::subtract::StepTime {
                    step: "free-list pop".into(),
                    ns: 1.5,
                    ns_ci: (1.0, 2.0),
                    rounds: 3,
                },
            )],
            learning: None,
            sites: Vec::new(),
            scaling: Err("not run in this test".into()),
            footprint: None,
            claims: vec![Claim {
                claim: "the fast-path gap is structural".into(),
                original: "31 vs 9 ns".into(),
                measured: "1.4×".into(),
                verdict: "holds".into(),
            }],
            pictures: vec![Picture {
                title: "pool_path".into(),
                file: Ok("pool_path.svg".into()),
            }],
            ablation: vec![],
            syscalls: Err("not run".into()),
        }
    }

    fn attribution() -> crate::attrib::Attribution {
        use crate::attrib::{Attribution, Cost};
        let c = |ir: f64| Cost {
            ir,
            l1_misses: 0.0,
            ll_misses: 0.0,
        };
        Attribution {
            path: "pool_path".into(),
            total: c(50.0),
            steps: vec![
                ("free-list pop".into(), c(20.0)),
                ("free-list push".into(), c(28.0)),
            ],
            residual: c(2.0),
            residual_sources: vec![("libc.so:".into(), 2.0)],
        }
    }

    #[test]
    fn the_json_report_has_steps_that_add_up_and_the_claims() {
        let r = report(Availability::probe(|_| Ok(())), &[]);
        let v = r.json();
        let p = &v["steps"]["pool_path"];
        let sum: f64 = p["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["ir"].as_f64().unwrap())
            .sum();
        assert_eq!(
            sum + p["residual_ir"].as_f64().unwrap(),
            p["total_ir"].as_f64().unwrap()
        );
        assert_eq!(
            p["total_ns"].as_f64(),
            Some(7.0),
            "the path's measured time"
        );
        assert_eq!(
            p["steps"][0]["ns"].as_f64(),
            Some(1.5),
            "timed by subtraction"
        );
        assert_eq!(p["steps"][0]["ns_ci"][1].as_f64(), Some(2.0));
        assert!(
            p["steps"][1]["ns"].is_null(),
            "a step not timed: null, not 0"
        );
        assert_eq!(
            p["residual_ns"].as_f64(),
            Some(7.0 - 1.5),
            "signed: the path less the timed"
        );
        assert_eq!(v["claims"][0]["verdict"], "holds");
        let md = r.markdown();
        assert!(
            md.contains("| pool_path | free-list pop | 20.00 | 40.0 % | 0.0000 | 0.0000 | 1.50 [1.00, 2.00] |"),
            "{md}"
        );
        assert!(
            md.contains("residual (no rule claims it: libc.so: 2.00)"),
            "{md}"
        );
        assert!(r.html().contains("The original&#39;s claims") || r.html().contains("claims"));
        let mut r = r;
        r.learning = Some(crate::learning::Study {
            runs: crate::learning::costs(&[(
                "learned (ELO)".to_string(),
                serde_json::json!({ "cpu_ms": 1.0, "page_faults": 1.0, "peak_rss_kib": 1.0 }),
            )]),
            ..Default::default()
        });
        assert!(r.markdown().contains("## Does learning pay?"));
        assert!(r.html().contains("Does learning pay?"));
        assert_eq!(r.json()["learning"]["learned_cost"], 1.0);
    }

    #[test]
    fn a_host_with_counters_shows_them_and_one_without_says_so() {
        let all = Availability::probe(|_| Ok(()));
        let r = report(
            all,
            &[
                (EventKind::Cycles, 20_000),
                (EventKind::Instructions, 40_000),
            ],
        );
        let md = r.markdown();
        assert!(md.contains("Hardware counters: available"));
        assert!(
            md.contains("| pool_path | hakmem | 7.00 | 20.0 | 17.5 | 40.0 | 2.00 |"),
            "{md}"
        );
        let none = Availability::probe(|e| {
            if e.is_hardware() {
                Err(libc::ENOENT)
            } else {
                Ok(())
            }
        });
        let r = report(none, &[(EventKind::TaskClock, 7000)]);
        let html = r.html();
        assert!(html.contains("unavailable on this host") && html.contains("simulated"));
        assert!(html.contains("<td>n/a</td>"));
        assert!(html.contains("<img class=\"flame\" src=\"pool_path.svg\""));
    }

    #[test]
    fn the_timeline_sets_the_original_beside_the_measured_stacks() {
        let a = attribution();
        let svg = timeline_chart(
            &[
                ("original hakmem", Some(31.0)),
                ("original mimalloc-style", Some(9.0)),
                ("reuse_path", None),
            ],
            &[("pool_path", &a)],
        );
        assert!(crate::flame::svg_well_formed(&svg), "{svg}");
        assert!(svg.contains("31.00 ns") && svg.contains("not measured"));
        // Two bars of time, three stacked parts (two steps and the residual), and the
        // legend's three swatches.
        assert_eq!(svg.matches("<rect").count(), 2 + 3 + 3, "{svg}");
        assert!(svg.contains("<title>free-list push: 28.00</title>"));
    }

    #[test]
    fn bar_chart_is_an_svg_with_one_bar_per_entry() {
        let svg = bar_chart(
            &[
                ("pair64/hakmem".into(), 6.0),
                ("pair64/mimalloc".into(), 6.5),
            ],
            "ns/op",
        );
        assert!(crate::flame::svg_well_formed(&svg));
        assert_eq!(svg.matches("<rect").count(), 2);
    }
}
