//! Counters around a probe: a perf-event group of the events this host has (scaled by
//! time enabled / time running when the kernel multiplexes), TSC cycles calibrated against
//! the monotonic clock, and — where hardware counters are missing — simulated cache misses.
//! Every figure is per operation; a missing one is `None` (JSON `null`, table "n/a").

use crate::events::{Availability, EventKind};
use crate::sim::SimCounts;
use microbench::probes::{self, Probe};
use microbench::table::Table;
use perf_event::events::{Cache, CacheOp, CacheResult, Event, Hardware, Software, WhichCache};
use perf_event::{Builder, Group};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

pub fn to_event(ev: EventKind) -> Event {
    match ev {
        EventKind::Cycles => Hardware::CPU_CYCLES.into(),
        EventKind::Instructions => Hardware::INSTRUCTIONS.into(),
        EventKind::BranchMisses => Hardware::BRANCH_MISSES.into(),
        EventKind::L1dReadMisses => Cache {
            which: WhichCache::L1D,
            operation: CacheOp::READ,
            result: CacheResult::MISS,
        }
        .into(),
        EventKind::LlcReadMisses => Cache {
            which: WhichCache::LL,
            operation: CacheOp::READ,
            result: CacheResult::MISS,
        }
        .into(),
        EventKind::TaskClock => Software::TASK_CLOCK.into(),
        EventKind::PageFaults => Software::PAGE_FAULTS.into(),
        EventKind::ContextSwitches => Software::CONTEXT_SWITCHES.into(),
    }
}

/// Opens each event alone once, to learn which ones this host has.
pub fn host_availability() -> Availability {
    Availability::probe(|ev| match Builder::new().kind(to_event(ev)).build() {
        Ok(_) => Ok(()),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EINVAL)),
    })
}

/// What one measurement read: counts with their enabled/running times, and the clocks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawCounts {
    /// Operations performed (iterations × the probe's ops per run).
    pub ops: u64,
    pub elapsed_ns: u64,
    pub tsc_ticks: Option<u64>,
    pub tsc_per_ns: Option<f64>,
    /// event → (count, time enabled, time running)
    pub values: BTreeMap<EventKind, (u64, u64, u64)>,
}

/// One probe's per-operation figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurement {
    pub probe: String,
    pub served_by: String,
    pub ops: u64,
    pub ns: f64,
    pub cycles: Option<f64>,
    pub tsc_cycles: Option<f64>,
    pub instructions: Option<f64>,
    pub ipc: Option<f64>,
    pub branch_misses: Option<f64>,
    pub l1d_misses: Option<f64>,
    pub llc_misses: Option<f64>,
    /// Totals over the measurement (not per op).
    pub task_clock_ms: Option<f64>,
    pub page_faults: Option<f64>,
    pub context_switches: Option<f64>,
    /// Whether the kernel multiplexed (counts were scaled).
    pub scaled: bool,
    pub sim: Option<SimCounts>,
}

impl Measurement {
    /// Turns raw counts into per-op figures. Shared by live runs and by recorded counts.
    pub fn from_raw(
        probe: &str,
        served_by: &str,
        raw: &RawCounts,
        sim: Option<SimCounts>,
    ) -> Measurement {
        let ops = raw.ops.max(1) as f64;
        let mut scaled = false;
        let mut total = |ev: EventKind| -> Option<f64> {
            let &(count, enabled, running) = raw.values.get(&ev)?;
            if running == 0 {
                return None; // never scheduled: unknown, not zero
            }
            if running < enabled {
                scaled = true;
                return Some(count as f64 * enabled as f64 / running as f64);
            }
            Some(count as f64)
        };
        let cycles_t = total(EventKind::Cycles);
        let instr_t = total(EventKind::Instructions);
        let m = Measurement {
            probe: probe.into(),
            served_by: served_by.into(),
            ops: raw.ops,
            ns: raw.elapsed_ns as f64 / ops,
            cycles: cycles_t.map(|c| c / ops),
            tsc_cycles: raw.tsc_ticks.map(|t| t as f64 / ops),
            instructions: instr_t.map(|i| i / ops),
            ipc: match (instr_t, cycles_t) {
                (Some(i), Some(c)) if c > 0.0 => Some(i / c),
                _ => None,
            },
            branch_misses: total(EventKind::BranchMisses).map(|x| x / ops),
            l1d_misses: total(EventKind::L1dReadMisses).map(|x| x / ops),
            llc_misses: total(EventKind::LlcReadMisses).map(|x| x / ops),
            task_clock_ms: total(EventKind::TaskClock).map(|ns| ns / 1e6),
            page_faults: total(EventKind::PageFaults),
            context_switches: total(EventKind::ContextSwitches),
            scaled: false,
            sim,
        };
        Measurement { scaled, ..m }
    }
}

/// TSC ticks per nanosecond, measured against the monotonic clock over ~20 ms.
pub fn calibrate_tsc() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        let t0 = Instant::now();
        // SAFETY: rdtsc has no preconditions on x86-64.
        let c0 = unsafe { core::arch::x86_64::_rdtsc() };
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c1 = unsafe { core::arch::x86_64::_rdtsc() };
        let ns = t0.elapsed().as_nanos() as f64;
        Some((c1 - c0) as f64 / ns)
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

fn rdtsc() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc has no preconditions on x86-64.
    return Some(unsafe { core::arch::x86_64::_rdtsc() });
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The calling thread pinned to one CPU, until dropped: then its former CPUs are back
/// (so what runs after the counters, the thread-scaling programs above all, and every child
/// they start, are not confined to one core).
pub struct Pinned {
    former: libc::cpu_set_t,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: restores a mask this thread had.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.former) };
    }
}

/// Pins the calling thread to the CPU it runs on (counts and TSC then come from one core).
/// None when it cannot.
pub fn pin_to_current_cpu() -> Option<Pinned> {
    // SAFETY: plain libc calls with zeroed, then filled, cpu_set_t values.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut former: libc::cpu_set_t = std::mem::zeroed();
        let cpu = libc::sched_getcpu();
        if cpu < 0 || libc::sched_getaffinity(0, size, &mut former) != 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        (libc::sched_setaffinity(0, size, &set) == 0).then_some(Pinned { former })
    }
}

/// Runs `probe` `iters` times (after one warm-up run) inside a perf-event group of the
/// available events.
pub fn measure(
    probe: &Probe,
    iters: u64,
    avail: &Availability,
    tsc_per_ns: Option<f64>,
) -> RawCounts {
    let mut run = (probe.make)();
    run();
    let mut group = Group::new().ok();
    let mut counters = Vec::new();
    if let Some(g) = group.as_mut() {
        for &ev in &avail.available {
            if let Ok(c) = Builder::new().group(g).kind(to_event(ev)).build() {
                counters.push((ev, c));
            }
        }
    }
    if let Some(g) = group.as_mut() {
        let _ = g.enable();
    }
    let tsc0 = rdtsc();
    let t0 = Instant::now();
    for _ in 0..iters {
        run();
    }
    let elapsed_ns = t0.elapsed().as_nanos() as u64;
    let tsc1 = rdtsc();
    let mut values = BTreeMap::new();
    if let Some(g) = group.as_mut() {
        let _ = g.disable();
        if let Ok(counts) = g.read() {
            let (enabled, running) = (counts.time_enabled(), counts.time_running());
            for (ev, c) in &counters {
                values.insert(*ev, (counts[c], enabled, running));
            }
        }
    }
    RawCounts {
        ops: iters * probes::OPS,
        elapsed_ns,
        tsc_ticks: tsc0
            .zip(tsc1)
            .map(|(a, b)| b - a)
            .filter(|_| tsc_per_ns.is_some()),
        tsc_per_ns,
        values,
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.digits$}"))
}

/// The fields in output order: (name, value). Hardware ones are None when unavailable.
pub fn fields(m: &Measurement) -> Vec<(&'static str, Option<f64>)> {
    let sim = m.sim.as_ref();
    vec![
        ("ns_per_op", Some(m.ns)),
        ("cycles_per_op", m.cycles),
        ("tsc_cycles_per_op", m.tsc_cycles),
        ("instructions_per_op", m.instructions),
        ("ipc", m.ipc),
        ("branch_misses_per_op", m.branch_misses),
        ("l1d_misses_per_op", m.l1d_misses),
        ("llc_misses_per_op", m.llc_misses),
        (
            "sim_instructions_per_op",
            sim.map(|s| s.per_op(s.instructions)),
        ),
        ("sim_l1_misses_per_op", sim.map(|s| s.per_op(s.l1_misses))),
        ("sim_ll_misses_per_op", sim.map(|s| s.per_op(s.ll_misses))),
        ("task_clock_ms", m.task_clock_ms),
        ("page_faults", m.page_faults),
        ("context_switches", m.context_switches),
    ]
}

/// Every measurement as a JSON array of objects: `probe`, `served_by`, `ops`, `scaled` and
/// each of `fields` (null where unavailable, never 0).
pub fn to_json(ms: &[Measurement]) -> String {
    let rows: Vec<serde_json::Value> = ms
        .iter()
        .map(|m| {
            let mut o = serde_json::Map::new();
            o.insert("probe".into(), m.probe.clone().into());
            o.insert("served_by".into(), m.served_by.clone().into());
            o.insert("ops".into(), m.ops.into());
            o.insert("scaled".into(), m.scaled.into());
            for (k, v) in fields(m) {
                // from_f64 gives None for NaN and infinities: those are null too.
                let n = v.and_then(serde_json::Number::from_f64);
                o.insert(k.into(), n.map_or(serde_json::Value::Null, Into::into));
            }
            serde_json::Value::Object(o)
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

pub fn to_csv(ms: &[Measurement]) -> String {
    let mut s = String::from("probe,served_by,ops,scaled");
    for (k, _) in fields(&Measurement::default()) {
        let _ = write!(s, ",{k}");
    }
    s.push('\n');
    for m in ms {
        let _ = write!(s, "{},{},{},{}", m.probe, m.served_by, m.ops, m.scaled);
        for (_, v) in fields(m) {
            let _ = write!(s, ",{}", v.map_or(String::new(), |x| format!("{x:.4}")));
        }
        s.push('\n');
    }
    s
}

/// The counters table; simulated columns are labelled "(sim)", unavailable ones "n/a".
pub fn table(ms: &[Measurement]) -> Table {
    let mut t = Table::new(&[
        "probe",
        "served by",
        "ns/op",
        "cycles/op",
        "TSC cycles/op",
        "instr/op",
        "IPC",
        "br-miss/op",
        "L1D miss/op",
        "LLC miss/op",
        "instr/op (sim)",
        "L1 miss/op (sim)",
        "LL miss/op (sim)",
        "page faults",
        "ctx sw",
    ]);
    for m in ms {
        let sim = m.sim.as_ref();
        t.push(vec![
            m.probe.clone(),
            m.served_by.clone(),
            format!("{:.2}", m.ns),
            opt(m.cycles, 1),
            opt(m.tsc_cycles, 1),
            opt(m.instructions, 1),
            opt(m.ipc, 2),
            opt(m.branch_misses, 3),
            opt(m.l1d_misses, 3),
            opt(m.llc_misses, 3),
            opt(sim.map(|s| s.per_op(s.instructions)), 1),
            opt(sim.map(|s| s.per_op(s.l1_misses)), 3),
            opt(sim.map(|s| s.per_op(s.ll_misses)), 3),
            opt(m.page_faults, 0),
            opt(m.context_switches, 0),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(values: &[(EventKind, u64, u64, u64)]) -> RawCounts {
        RawCounts {
            ops: 1000,
            elapsed_ns: 6000,
            tsc_ticks: Some(15_000),
            tsc_per_ns: Some(2.5),
            values: values
                .iter()
                .map(|&(e, c, en, ru)| (e, (c, en, ru)))
                .collect(),
        }
    }

    #[test]
    fn recorded_hardware_counts_fill_the_hardware_columns() {
        // What a host with a PMU would read (recorded figures), through the same code path.
        let r = raw(&[
            (EventKind::Cycles, 20_000, 100, 100),
            (EventKind::Instructions, 50_000, 100, 100),
            (EventKind::BranchMisses, 10, 100, 100),
            (EventKind::L1dReadMisses, 40, 100, 50), // multiplexed: scaled ×2
            (EventKind::LlcReadMisses, 2, 100, 100),
            (EventKind::TaskClock, 6_000, 100, 100),
            (EventKind::PageFaults, 0, 100, 100),
            (EventKind::ContextSwitches, 0, 100, 100),
        ]);
        let m = Measurement::from_raw("pool_path", "hakmem", &r, None);
        assert_eq!(m.cycles, Some(20.0));
        assert_eq!(m.instructions, Some(50.0));
        assert_eq!(m.ipc, Some(2.5));
        assert_eq!(m.l1d_misses, Some(0.08));
        assert!(m.scaled);
        assert_eq!(m.ns, 6.0);
        assert_eq!(m.tsc_cycles, Some(15.0));
        assert_eq!(m.page_faults, Some(0.0), "a software zero is a real zero");
        let table = table(std::slice::from_ref(&m)).markdown();
        assert!(
            table.contains("| pool_path | hakmem | 6.00 | 20.0 | 15.0 | 50.0 | 2.50 |"),
            "{table}"
        );
        let json = to_json(&[m]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["ipc"].as_f64(), Some(2.5));
        assert_eq!(v[0]["probe"], "pool_path");
    }

    #[test]
    fn missing_hardware_events_are_null_not_zero() {
        let r = raw(&[
            (EventKind::TaskClock, 6_000, 100, 100),
            (EventKind::PageFaults, 3, 100, 100),
        ]);
        let m = Measurement::from_raw("reuse_path", "hakmem", &r, None);
        let json = to_json(std::slice::from_ref(&m));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let o = &v[0];
        for k in [
            "cycles_per_op",
            "instructions_per_op",
            "ipc",
            "branch_misses_per_op",
            "l1d_misses_per_op",
            "llc_misses_per_op",
        ] {
            assert!(o.get(k).is_some_and(|v| v.is_null()), "{k}: {o}");
        }
        assert_eq!(o["page_faults"].as_f64(), Some(3.0));
        assert!(table(std::slice::from_ref(&m))
            .markdown()
            .contains("| n/a |"));
        assert!(to_csv(&[m]).lines().nth(1).unwrap().contains(",,"));
        // A counter the kernel never scheduled is unknown, not zero.
        let r = raw(&[(EventKind::Cycles, 0, 100, 0)]);
        assert_eq!(Measurement::from_raw("x", "hakmem", &r, None).cycles, None);
    }
}
