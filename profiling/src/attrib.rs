//! Exact attribution of a path's cost to its steps: the path runs under callgrind
//! (instruction level, cache simulation with explicit sizes), and every instruction it
//! executed is assigned to one step by where it came from in the source, inlined code
//! included: the `addr2line` crate reads the executable's DWARF and gives each address its
//! chain of inlined frames (a `ptr::write` inside `AllocHeader::write` inside
//! `reuse::alloc`). The instruction belongs to the innermost frame of our code that a rule
//! of `RULES` names (file, function); toolchain frames (`core`, `std`) are skipped, so they
//! count for the code of ours that used them. What no rule claims is the residual, so the
//! steps plus the residual add up to the path's total exactly; the parser also checks that
//! the self costs it read add up to callgrind's own `summary:`.

use crate::sim::CACHE_ARGS;
use microbench::native;
use microbench::table::Table;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// One step's cost per operation (instructions exact; simulated L1 and LL misses).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub ir: f64,
    pub l1_misses: f64,
    pub ll_misses: f64,
}

impl Cost {
    fn add(&mut self, c: &[u64; 3]) {
        self.ir += c[0] as f64;
        self.l1_misses += c[1] as f64;
        self.ll_misses += c[2] as f64;
    }
    fn per(&self, ops: f64) -> Cost {
        Cost {
            ir: self.ir / ops,
            l1_misses: self.l1_misses / ops,
            ll_misses: self.ll_misses / ops,
        }
    }
}

/// A path's cost split into steps, per operation.
#[derive(Clone, Debug, Serialize)]
pub struct Attribution {
    pub path: String,
    pub total: Cost,
    /// In the order of `STEPS`; steps with no instructions are left out.
    pub steps: Vec<(String, Cost)>,
    /// What no rule claimed (files of no step, code outside any of our functions).
    pub residual: Cost,
    /// The residual's biggest sources, `object:function` with instructions per operation.
    pub residual_sources: Vec<(String, f64)>,
}

/// Callgrind's options for a profile `parse` reads: per instruction, names in full.
const INSTR_DUMP: [&str; 4] = [
    "--dump-instr=yes",
    "--dump-line=no",
    "--compress-strings=no",
    "--compress-pos=no",
];

/// Each attributed path by name, or why it could not be attributed.
pub type PathAttributions = Vec<(String, Result<Attribution, String>)>;

/// A rule: lines of `file` (a path suffix; one ending in `/` is a folder) inside one of
/// `fns` (any function when empty) belong to `step`. The first matching rule wins.
pub struct Rule {
    pub file: &'static str,
    pub fns: &'static [&'static str],
    pub step: &'static str,
}

const fn rule(file: &'static str, fns: &'static [&'static str], step: &'static str) -> Rule {
    Rule { file, fns, step }
}

/// The steps, in the order the tables list them.
pub const STEPS: [&str; 11] = [
    "C entry points",
    "call-site hash",
    "learner selection",
    "header write + read + magic check",
    "size class",
    "free-list pop",
    "segment lookup",
    "free-list push",
    "thread-local heap (TLS)",
    "front routing",
    "probe loop",
];

/// The step of each line of ours, for every path (the pool path simply has no lines in the
/// hakmem-model steps).
pub const RULES: &[Rule] = &[
    rule("src/front/reuse.rs", &["site_slot"], "call-site hash"),
    rule("src/site.rs", &[], "call-site hash"),
    rule("src/learn/sites.rs", &[], "call-site hash"),
    rule("src/front/reuse.rs", &["decide_small"], "learner selection"),
    rule("src/learn/", &[], "learner selection"),
    rule("src/header.rs", &[], "header write + read + magic check"),
    rule(
        "src/front/reuse.rs",
        &["free", "free_steps"],
        "header write + read + magic check",
    ),
    rule("src/size_class.rs", &[], "size class"),
    rule("src/pool/alloc.rs", &[], "free-list pop"),
    rule("src/pool/collect.rs", &[], "free-list pop"),
    rule(
        "src/pool/page.rs",
        &["pop", "next_of", "next_checked", "link_of", "extend"],
        "free-list pop",
    ),
    rule("src/pool/segment.rs", &[], "segment lookup"),
    rule("src/pool/free.rs", &[], "free-list push"),
    rule(
        "src/pool/page.rs",
        &["push", "push_onto", "set_next"],
        "free-list push",
    ),
    rule(
        "src/pool/heap.rs",
        &["current", "fast"],
        "thread-local heap (TLS)",
    ),
    rule("src/tls.rs", &[], "thread-local heap (TLS)"),
    rule("src/ffi.rs", &[], "C entry points"),
    rule("preload/src/", &[], "C entry points"),
    rule("src/front/", &[], "front routing"),
    rule("src/global.rs", &[], "front routing"),
    rule("src/config.rs", &[], "front routing"),
    rule("microbench/src/", &[], "probe loop"),
    rule("profiling/src/", &[], "probe loop"),
];

/// The preload's exported entry points, whose first instructions (taking the caller's
/// return address as the call site) are assembly without line tables.
const C_ENTRIES: [&str; 6] = [
    "malloc",
    "free",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
];

/// One instruction's self cost in a callgrind profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Instr {
    /// The object it is in (`ob=`).
    pub object: String,
    /// The function callgrind names (`fn=`).
    pub function: String,
    /// Its address as the process ran (the object's load base included).
    pub addr: u64,
    /// Ir, L1 misses (I1mr + D1mr + D1mw), LL misses (ILmr + DLmr + DLmw).
    pub cost: [u64; 3],
}

/// Reads a callgrind profile written with `--dump-instr=yes --compress-strings=no
/// --compress-pos=no` (positions `instr` or `instr line`): the self cost of each
/// instruction (the cost line after a `calls=` line is the call's inclusive cost, counted
/// where the callee's own instructions are, and skipped). Checks that the self costs add up
/// to the `totals:` line (else `summary:`).
pub fn parse(text: &str) -> Result<Vec<Instr>, String> {
    let events = crate::sim::events(text)?;
    let positions = text
        .lines()
        .find_map(|l| l.strip_prefix("positions:"))
        .map_or(1, |p| p.split_whitespace().count());
    if !text.lines().any(|l| l.starts_with("positions: instr")) {
        return Err(
            "callgrind output has no instruction addresses (run it with --dump-instr=yes)".into(),
        );
    }
    let idx = |name: &str| events.iter().position(|e| *e == name);
    let ir = idx("Ir").ok_or("callgrind output counts no Ir")?;
    let l1: Vec<usize> = ["I1mr", "D1mr", "D1mw"]
        .iter()
        .filter_map(|e| idx(e))
        .collect();
    let ll: Vec<usize> = ["ILmr", "DLmr", "DLmw"]
        .iter()
        .filter_map(|e| idx(e))
        .collect();
    let (mut ob, mut func) = (String::new(), String::new());
    let mut after_call = false;
    let mut out = Vec::new();
    let mut summary = None;
    for raw in text.lines() {
        if let Some(v) = raw.strip_prefix("ob=") {
            ob = v.to_string();
        } else if let Some(v) = raw.strip_prefix("fn=") {
            func = v.to_string();
        } else if raw.starts_with("calls=") {
            after_call = true;
        } else if let Some(v) = raw.strip_prefix("totals:").or_else(|| {
            // `totals:` (the sum of the cost lines) when present; `summary:` may count a few
            // instructions that no cost line holds (seen at process exit).
            raw.strip_prefix("summary:").filter(|_| summary.is_none())
        }) {
            summary = v
                .split_whitespace()
                .nth(ir)
                .and_then(|x| x.parse::<u64>().ok());
        } else if raw.starts_with("0x") || raw.starts_with(['+', '-', '*']) {
            if std::mem::take(&mut after_call) {
                continue; // the inclusive cost of the call just named
            }
            let f: Vec<&str> = raw.split_whitespace().collect();
            let addr = f[0]
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or(
                    "callgrind output uses relative positions (run it with --compress-pos=no)",
                )?;
            let get = |i: usize| {
                f.get(i + positions)
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0u64)
            };
            out.push(Instr {
                object: ob.clone(),
                function: func.clone(),
                addr,
                cost: [
                    get(ir),
                    l1.iter().map(|&i| get(i)).sum(),
                    ll.iter().map(|&i| get(i)).sum(),
                ],
            });
        }
    }
    let summary = summary.ok_or("callgrind output has no summary: line")?;
    let sum: u64 = out.iter().map(|l| l.cost[0]).sum();
    if sum != summary {
        return Err(format!(
            "the self costs read add up to {sum} Ir, callgrind's summary says {summary}"
        ));
    }
    Ok(out)
}

/// A frame of an instruction's inline chain: source file and function name (demangled).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub file: Option<String>,
    pub function: Option<String>,
}

/// The inline chain of each address of one executable, innermost frame first, from its
/// DWARF (`addr2line`). Addresses are as the process ran: `base` is subtracted.
pub struct Resolver {
    loader: addr2line::Loader,
    base: u64,
}

impl Resolver {
    /// Opens `exe`; `base` is found from a function whose run-time address is known.
    pub fn new(exe: &Path, symbol: &str, runtime_addr: u64) -> Result<Resolver, String> {
        let data = std::fs::read(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", exe.display()))?;
        use object::{Object, ObjectSymbol};
        let sym = file
            .symbols()
            .find(|s| s.name() == Ok(symbol))
            .ok_or_else(|| format!("{} has no symbol {symbol}", exe.display()))?;
        let loader = addr2line::Loader::new(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
        Ok(Resolver {
            loader,
            base: runtime_addr.wrapping_sub(sym.address()),
        })
    }

    pub fn frames(&self, addr: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if let Ok(mut it) = self.loader.find_frames(addr.wrapping_sub(self.base)) {
            while let Ok(Some(f)) = it.next() {
                out.push(Frame {
                    file: f.location.and_then(|l| l.file.map(str::to_string)),
                    function: f
                        .function
                        .and_then(|n| n.demangle().ok().map(|c| c.into_owned())),
                });
            }
        }
        out
    }
}

/// The last name of a demangled function path that is not a closure or a generic
/// argument: `hakmem::pool::page::Page::pop` → `pop`.
pub fn short_fn(name: &str) -> &str {
    let name = name.split('<').next().unwrap_or(name);
    name.rsplit("::")
        .find(|p| !p.is_empty() && !p.starts_with('{'))
        .unwrap_or(name)
}

/// The workspace root, where our crates' sources are.
fn workspace_root() -> String {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    format!("{}/", root.display())
}

/// `file` relative to the workspace when it is a source of our crates.
fn ours<'a>(root: &str, file: &'a str) -> Option<&'a str> {
    file.strip_prefix(root)
}

fn step_of(rel: &str, func: Option<&str>) -> Option<&'static str> {
    RULES.iter().find_map(|r| {
        let file_ok = if r.file.ends_with('/') {
            rel.starts_with(r.file)
        } else {
            rel == r.file
        };
        let fn_ok = r.fns.is_empty() || func.is_some_and(|f| r.fns.contains(&f));
        (file_ok && fn_ok).then_some(r.step)
    })
}

/// The step of an instruction: the innermost frame of our code that a rule names.
fn step_of_frames(root: &str, frames: &[Frame]) -> Option<&'static str> {
    frames.iter().find_map(|f| {
        let rel = ours(root, f.file.as_deref()?)?;
        step_of(rel, f.function.as_deref().map(short_fn))
    })
}

/// Splits `instrs` (the profile of `ops` operations) into steps; `frames` gives the inline
/// chain of an instruction of the executable `exe_object` (callgrind's `ob=`).
pub fn attribute(
    path: &str,
    instrs: &[Instr],
    ops: u64,
    exe_object: &str,
    frames: impl Fn(u64) -> Vec<Frame>,
) -> Attribution {
    let root = workspace_root();
    let mut by_step: HashMap<&'static str, Cost> = HashMap::new();
    let (mut total, mut residual) = (Cost::default(), Cost::default());
    let mut residual_by: HashMap<String, f64> = HashMap::new();
    for i in instrs {
        total.add(&i.cost);
        let chain = if i.object == exe_object {
            frames(i.addr)
        } else {
            Vec::new()
        };
        // The C entry points are naked assembly (no DWARF): named by their symbol.
        let entry = (i.object == exe_object && C_ENTRIES.contains(&i.function.as_str()))
            .then_some("C entry points");
        match step_of_frames(&root, &chain).or(entry) {
            Some(s) => by_step.entry(s).or_default().add(&i.cost),
            None => {
                residual.add(&i.cost);
                let obj = i.object.rsplit('/').next().unwrap_or("");
                *residual_by
                    .entry(format!("{obj}:{}", short_fn(&i.function)))
                    .or_default() += i.cost[0] as f64;
            }
        }
    }
    let n = ops.max(1) as f64;
    let mut residual_sources: Vec<(String, f64)> =
        residual_by.into_iter().map(|(k, v)| (k, v / n)).collect();
    residual_sources.sort_by(|a, b| b.1.total_cmp(&a.1));
    residual_sources.truncate(5);
    Attribution {
        path: path.to_string(),
        total: total.per(n),
        steps: STEPS
            .iter()
            .filter_map(|s| by_step.get(s).map(|c| (s.to_string(), c.per(n))))
            .filter(|(_, c)| c.ir > 0.0)
            .collect(),
        residual: residual.per(n),
        residual_sources,
    }
}

/// A step's time by subtraction: ns per operation and its 95 % interval.
pub type StepNs = (f64, (f64, f64));

/// The step table: per path, each step's instructions, share and simulated misses, and its
/// time by subtraction where `step_ns` has one; the residual with its sources (its time:
/// the path's measured time less the timed steps, signed); the path's total with its
/// measured time from `ns_of`.
pub fn table(
    paths: &PathAttributions,
    ns_of: impl Fn(&str) -> Option<f64>,
    step_ns: impl Fn(&str, &str) -> Option<StepNs>,
) -> Table {
    let mut t = Table::new(&[
        "path",
        "step",
        "instructions / op (exact)",
        "share",
        "L1 misses / op (sim)",
        "LL misses / op (sim)",
        "ns / op (by subtraction, 95 % CI)",
    ]);
    let fmt_ns = |v: Option<StepNs>| {
        v.map_or("–".to_string(), |(ns, (lo, hi))| {
            format!("{ns:.2} [{lo:.2}, {hi:.2}]")
        })
    };
    for (path, a) in paths {
        let a = match a {
            Ok(a) => a,
            Err(e) => {
                let mut row = vec![path.clone(), format!("not attributed: {e}")];
                row.resize(7, String::new());
                t.push(row);
                continue;
            }
        };
        let row = |step: String, c: &Cost, ns: String| {
            vec![
                path.clone(),
                step,
                format!("{:.2}", c.ir),
                format!("{:.1} %", 100.0 * c.ir / a.total.ir.max(1e-9)),
                format!("{:.4}", c.l1_misses),
                format!("{:.4}", c.ll_misses),
                ns,
            ]
        };
        for (step, c) in &a.steps {
            t.push(row(step.clone(), c, fmt_ns(step_ns(path, step))));
        }
        let sources: Vec<String> = a
            .residual_sources
            .iter()
            .map(|(s, ir)| format!("{s} {ir:.2}"))
            .collect();
        let label = if sources.is_empty() {
            "residual (no rule claims it)".to_string()
        } else {
            format!("residual (no rule claims it: {})", sources.join(", "))
        };
        t.push(row(
            label,
            &a.residual,
            residual_ns(a, ns_of(path), &step_ns).map_or("–".into(), |r| {
                format!("{r:+.2} (the path's time less the timed steps)")
            }),
        ));
        let ns = ns_of(path).map_or("–".into(), |ns| format!("{ns:.2}"));
        t.push(row("= the path (measured)".into(), &a.total, ns));
    }
    t
}

/// The path's measured time less its timed steps (signed, never clamped); None when no
/// step of the path was timed or the path's time is unknown.
pub fn residual_ns(
    a: &Attribution,
    total_ns: Option<f64>,
    step_ns: impl Fn(&str, &str) -> Option<StepNs>,
) -> Option<f64> {
    let timed: Vec<f64> = a
        .steps
        .iter()
        .filter_map(|(s, _)| step_ns(&a.path, s).map(|(ns, _)| ns))
        .collect();
    if timed.is_empty() {
        return None;
    }
    Some(total_ns? - timed.iter().sum::<f64>())
}

/// Runs `hakprof run-probe` for `probe` under callgrind at instruction level (cache
/// simulation with `CACHE_ARGS`, collecting only inside `hakprof_measured_region`) and
/// attributes it with `exe`'s DWARF.
pub fn run(
    exe: &Path,
    probe: &str,
    iters: u64,
    ops_per_iter: u64,
    tmp: &Path,
) -> Result<Attribution, String> {
    let text = crate::sim::callgrind_probe(exe, probe, iters, tmp, &INSTR_DUMP)?;
    let instrs = parse(&text)?;
    const REGION: &str = "hakprof_measured_region";
    let exe_object = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let exe_object = exe_object.to_string_lossy();
    // The region's first instruction is its entry: that pins the load base.
    let entry = instrs
        .iter()
        .filter(|i| i.function == REGION && i.object == exe_object)
        .map(|i| i.addr)
        .min()
        .ok_or("the profile has no instruction of hakprof_measured_region")?;
    let resolver = Resolver::new(exe, REGION, entry)?;
    Ok(attribute(
        probe,
        &instrs,
        iters * ops_per_iter,
        &exe_object,
        |a| resolver.frames(a),
    ))
}

/// Attributes path `name`: a probe of `microbench::probes` (`reuse_path`, `pool_path`, …)
/// or the C path `cabi/<pattern>/hakmem`.
pub fn run_path(exe: &Path, name: &str, tmp: &Path) -> Result<Attribution, String> {
    if let Some(pattern) = name
        .strip_prefix("cabi/")
        .and_then(|r| r.strip_suffix("/hakmem"))
    {
        return run_cabi(pattern, tmp);
    }
    microbench::probes::by_name(name).ok_or_else(|| {
        format!("no probe named {name:?} (`hakprof list`, or cabi/<pattern>/hakmem)")
    })?;
    run(exe, name, 100, microbench::probes::OPS, tmp)
}

/// Operations of the C-path runs (N, then 2N).
const CABI_OPS: u64 = 20_000;

/// The C path, `cabi/<pattern>/hakmem`: the probe program of `microbench::cabi` under the
/// preload, N and then 2N operations under callgrind. Each instruction of `libhakmem.so`
/// costs its 2N count minus its N count over N per operation (start-up and exit cancel;
/// the harness loop is the program's, not the library's), resolved with the library's
/// DWARF (the `preload` profile keeps line tables).
pub fn run_cabi(pattern: &str, tmp: &Path) -> Result<Attribution, String> {
    let alloc = native::hakmem()?;
    let program = native::build(microbench::cabi::SOURCE)?;
    let lib = alloc.lib.clone().ok_or("hakmem has no library")?;
    let lib_object = lib.to_string_lossy().into_owned();
    let profile = |ops: u64| -> Result<Vec<Instr>, String> {
        let out = tmp.join(format!("callgrind.cabi.{pattern}.{ops}"));
        let mut cmd = native::command(&alloc, Path::new("valgrind"));
        cmd.args(["--tool=callgrind", "--cache-sim=yes"])
            .args(CACHE_ARGS)
            .args(INSTR_DUMP)
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(&program)
            .args(["count", pattern, &ops.to_string()]);
        let run = native::run(cmd)?;
        native::check_served(&alloc, &run.stderr)?;
        let text = std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let _ = std::fs::remove_file(&out);
        let mut v = parse(&text)?;
        v.retain(|i| i.object == lib_object);
        Ok(v)
    };
    let (one, two) = (profile(CABI_OPS)?, profile(2 * CABI_OPS)?);
    // Per instruction: 2N − N (no instruction may run fewer times in the longer run).
    let mut diff: HashMap<u64, (Instr, [i64; 3])> = HashMap::new();
    for (runs, sign) in [(&two, 1i64), (&one, -1i64)] {
        for i in runs.iter() {
            let e = diff.entry(i.addr).or_insert_with(|| (i.clone(), [0; 3]));
            for k in 0..3 {
                e.1[k] += sign * i.cost[k] as i64;
            }
        }
    }
    let entry = two
        .iter()
        .filter(|i| i.function == "malloc")
        .map(|i| i.addr)
        .min()
        .ok_or("the profile has no instruction of libhakmem.so's malloc")?;
    let resolver = Resolver::new(&lib, "malloc", entry)?;
    let mut instrs: Vec<Instr> = Vec::new();
    for (_, (mut i, d)) in diff {
        if d.iter().all(|&x| x >= 0) {
            i.cost = [d[0] as u64, d[1] as u64, d[2] as u64];
            instrs.push(i);
        } else {
            return Err(format!(
                "instruction {:#x} ({}) ran fewer times in the 2N run than in the N run",
                i.addr, i.function
            ));
        }
    }
    instrs.sort_by_key(|i| i.addr);
    Ok(attribute(
        &format!("cabi/{pattern}/hakmem"),
        &instrs,
        CABI_OPS,
        &lib_object,
        |a| resolver.frames(a),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_function_not_its_path_or_closure() {
        assert_eq!(short_fn("hakmem::pool::page::Page::pop"), "pop");
        assert_eq!(
            short_fn("microbench::probes::pair_run::{closure#0}"),
            "pair_run"
        );
        assert_eq!(
            short_fn("<hakmem::global::Hakmem as core::alloc::global::GlobalAlloc>::alloc"),
            ""
        );
        assert_eq!(short_fn("malloc"), "malloc");
    }

    #[test]
    fn every_instruction_lands_in_one_step_or_the_residual() {
        // In the executable: a pool pop with a ptr::write inlined into it, a header write
        // inlined into the reuse front, an address without a frame of ours; a call (its
        // inclusive cost skipped); an instruction of libc.
        let text = "positions: instr\nevents: Ir D1mr\nob=/x/hakprof\nfn=f\n0x10 10 1\n0x11 4\n0x12 2\ncfn=g\ncalls=1 0x99\n0x13 1000 7\n0x14 5\nob=/usr/lib/libc.so.6\nfn=memcpy\n0x500 3 1\nsummary: 24 2\n";
        let instrs = parse(text).unwrap();
        assert_eq!(
            instrs.len(),
            5,
            "the call's inclusive cost is not a self cost"
        );
        let root = workspace_root();
        let frame = |file: &str, func: &str| Frame {
            file: Some(format!("{root}{file}")),
            function: Some(func.to_string()),
        };
        let toolchain = Frame {
            file: Some("/rustc/abc/library/core/src/ptr/mod.rs".into()),
            function: Some("core::ptr::write".into()),
        };
        let a = attribute("p", &instrs, 1, "/x/hakprof", |addr| match addr {
            0x10 => vec![frame("src/pool/page.rs", "hakmem::pool::page::Page::pop")],
            0x11 => vec![
                toolchain.clone(),
                frame("src/pool/page.rs", "hakmem::pool::page::Page::pop"),
            ],
            0x12 => vec![
                toolchain.clone(),
                frame("src/header.rs", "hakmem::header::AllocHeader::write"),
                frame("src/front/reuse.rs", "hakmem::front::reuse::alloc"),
            ],
            _ => vec![toolchain.clone()],
        });
        let step = |n: &str| a.steps.iter().find(|(s, _)| s == n).map(|(_, c)| c.ir);
        assert_eq!(
            step("free-list pop"),
            Some(14.0),
            "core's write counts for the pop"
        );
        assert_eq!(
            step("header write + read + magic check"),
            Some(2.0),
            "the innermost frame of ours wins"
        );
        assert_eq!(a.residual.ir, 8.0);
        assert_eq!(a.residual_sources[0], ("hakprof:f".to_string(), 5.0));
        let sum: f64 = a.steps.iter().map(|(_, c)| c.ir).sum::<f64>() + a.residual.ir;
        assert_eq!(sum, a.total.ir);
        assert_eq!(a.total.l1_misses, 2.0);
    }

    #[test]
    fn refuses_profiles_it_would_misread() {
        let p = "positions: instr\nevents: Ir\nob=a\nfn=f\n";
        assert!(
            parse(&format!("{p}+1 3\nsummary: 3\n")).is_err(),
            "relative positions"
        );
        assert!(parse("positions: line\nevents: Ir\nfn=f\n1 2\nsummary: 2\n").is_err());
        let e = parse(&format!("{p}0x1 2\nsummary: 5\n")).unwrap_err();
        assert!(e.contains("add up to 2"), "{e}");
    }
}
