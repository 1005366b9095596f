//! Simulated cache misses: the probe re-run under callgrind with cache simulation and
//! explicit cache sizes (this VM reports a fake L3), counting only inside
//! `hakprof_measured_region` so set-up and start-up stay out.

use std::path::Path;
use std::process::Command;

/// The cache geometry passed to valgrind: 32 KiB 8-way L1s, 32 MiB 16-way LL, 64 B lines.
pub const CACHE_ARGS: [&str; 3] = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=33554432,16,64"];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimCounts {
    pub ops: u64,
    pub instructions: u64,
    /// I1mr + D1mr + D1mw
    pub l1_misses: u64,
    /// ILmr + DLmr + DLmw
    pub ll_misses: u64,
}

impl SimCounts {
    pub fn per_op(&self, total: u64) -> f64 {
        total as f64 / self.ops.max(1) as f64
    }
}

/// The event names of a callgrind output (its `events:` line), in column order.
pub fn events(text: &str) -> Result<Vec<&str>, String> {
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .ok_or("callgrind output has no events: line")?
        .split_whitespace()
        .collect())
}

/// Reads a callgrind output file's `events:` and `summary:`/`totals:` lines.
pub fn parse_callgrind(text: &str, ops: u64) -> Result<SimCounts, String> {
    let events = events(text)?;
    let totals: Vec<u64> = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .ok_or("callgrind output has no summary: line")?
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |name: &str| {
        events
            .iter()
            .position(|e| *e == name)
            .and_then(|i| totals.get(i))
            .copied()
            .unwrap_or(0)
    };
    if !events.contains(&"D1mr") {
        return Err("callgrind ran without cache simulation".into());
    }
    Ok(SimCounts {
        ops,
        instructions: get("Ir"),
        l1_misses: get("I1mr") + get("D1mr") + get("D1mw"),
        ll_misses: get("ILmr") + get("DLmr") + get("DLmw"),
    })
}

/// Runs `hakprof run-probe` for `probe` under callgrind with cache simulation
/// (`CACHE_ARGS`), collecting only inside `hakprof_measured_region`, plus `extra` options;
/// returns the profile's text. An error (with a reason) when valgrind is missing or fails.
pub fn callgrind_probe(
    exe: &Path,
    probe: &str,
    iters: u64,
    tmp: &Path,
    extra: &[&str],
) -> Result<String, String> {
    let out = tmp.join(format!("callgrind.{}.out", probe.replace('/', "_")));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--cache-sim=yes")
        .args(CACHE_ARGS)
        .arg("--collect-atstart=no")
        .arg("--toggle-collect=hakprof_measured_region")
        .args(extra)
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["run-probe", "--probe", probe, "--iters", &iters.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            format!("valgrind not found ({e}): install it with `apt-get install valgrind`")
        })?;
    if !status.success() {
        return Err(format!("valgrind exited with {status}"));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&out);
    Ok(text)
}

/// The probe's simulated counts per operation.
pub fn simulate(
    exe: &Path,
    probe: &str,
    iters: u64,
    ops_per_iter: u64,
    tmp: &Path,
) -> Result<SimCounts, String> {
    let text = callgrind_probe(exe, probe, iters, tmp, &[])?;
    parse_callgrind(&text, iters * ops_per_iter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recorded_callgrind_summary() {
        let text = "# callgrind format\nversion: 1\nevents: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfn=foo\n1 2 3\nsummary: 100000 30000 20000 5 40 10 2 3 1\n";
        let s = parse_callgrind(text, 1000).unwrap();
        assert_eq!((s.instructions, s.l1_misses, s.ll_misses), (100000, 55, 6));
        assert_eq!(s.per_op(s.instructions), 100.0);
        assert!(
            parse_callgrind("events: Ir\nsummary: 5\n", 1).is_err(),
            "no cache simulation"
        );
        assert!(parse_callgrind("nothing", 1).is_err());
    }
}
