//! Flamegraphs: stacks sampled by `perf record -e cpu-clock -F 999 -g` from a child that
//! runs one probe, folded by inferno's perf collapser, kept to the measured region, drawn
//! by inferno. Plus a differential graph (reuse vs pool) and a *step* graph whose frame
//! widths are measured per-operation costs.

use inferno::collapse::perf::{Folder, Options as CollapseOptions};
use inferno::collapse::Collapse;
use inferno::flamegraph::{self, Options};
use std::path::Path;
use std::process::Command;

pub const PERF_MISSING: &str =
    "perf not found: install it (Debian: `apt-get install linux-perf`; Ubuntu: `apt-get install linux-tools-$(uname -r)`)";

pub fn perf_available() -> bool {
    Command::new("perf")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Samples `probe` for `seconds` and returns its folded stacks (only those under the
/// measured region, so start-up and set-up are left out).
pub fn record(exe: &Path, probe: &str, seconds: f64, tmp: &Path) -> Result<String, String> {
    if !perf_available() {
        return Err(PERF_MISSING.into());
    }
    let data = tmp.join(format!("perf.{}.data", probe.replace('/', "_")));
    let st = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-o"])
        .arg(&data)
        .arg("--")
        .arg(exe)
        .args([
            "run-probe",
            "--probe",
            probe,
            "--seconds",
            &seconds.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("perf record: {e}"))?;
    if !st.status.success() {
        return Err(format!(
            "perf record failed: {}",
            String::from_utf8_lossy(&st.stderr).trim()
        ));
    }
    let script = Command::new("perf")
        .arg("script")
        .arg("-i")
        .arg(&data)
        .output()
        .map_err(|e| format!("perf script: {e}"))?;
    let _ = std::fs::remove_file(&data);
    if !script.status.success() {
        return Err(format!(
            "perf script failed: {}",
            String::from_utf8_lossy(&script.stderr).trim()
        ));
    }
    let folded = collapse(&script.stdout)?;
    Ok(keep_measured(&folded))
}

/// `perf script` text → folded stacks (inferno's collapser).
pub fn collapse(perf_script: &[u8]) -> Result<String, String> {
    let mut out = Vec::new();
    let mut folder = Folder::from(CollapseOptions::default());
    folder
        .collapse(perf_script, &mut out)
        .map_err(|e| format!("collapse: {e}"))?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Keeps the stacks that pass through the measured region, starting them there.
pub fn keep_measured(folded: &str) -> String {
    let mut s = String::new();
    for line in folded.lines() {
        if let Some(i) = line.find("hakprof_measured_region") {
            s.push_str(&line[i..]);
            s.push('\n');
        }
    }
    s
}

/// Draws folded stacks as an SVG flamegraph.
pub fn svg(folded: &str, title: &str, count_name: &str) -> Result<Vec<u8>, String> {
    let mut opts = Options::default();
    opts.title = title.to_string();
    opts.count_name = count_name.to_string();
    let mut out = Vec::new();
    let lines: Vec<&str> = folded.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(format!("no samples for {title}"));
    }
    flamegraph::from_lines(&mut opts, lines, &mut out).map_err(|e| format!("flamegraph: {e}"))?;
    Ok(out)
}

/// A differential flamegraph: `after` drawn, coloured by its change from `before`
/// (inferno's differential folding: red frames grew, blue shrank), widths in `count_name`.
pub fn differential(
    before: &str,
    after: &str,
    title: &str,
    count_name: &str,
) -> Result<Vec<u8>, String> {
    let mut folded = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.as_bytes(),
        after.as_bytes(),
        &mut folded,
    )
    .map_err(|e| format!("differential: {e}"))?;
    svg(&String::from_utf8_lossy(&folded), title, count_name)
}

/// A step: a frame of the path with its cost per operation (in the graph's unit).
pub struct Step {
    pub name: String,
    pub cost: f64,
}

/// Folded lines for the step graph: `path;step width`, widths `cost × scale` rounded.
pub fn step_folded(paths: &[(&str, Vec<Step>)], scale: f64) -> String {
    let mut s = String::new();
    for (path, steps) in paths {
        for st in steps {
            let w = (st.cost * scale).round().max(0.0) as u64;
            if w > 0 {
                s.push_str(&format!(
                    "{path};{} {w}\n",
                    st.name.replace([' ', ';'], "_")
                ));
            }
        }
    }
    s
}

/// Whether `svg` is well-formed enough to open: every tag closed, in order.
pub fn svg_well_formed(svg: &str) -> bool {
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    'next: while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        // Script sections and comments may hold '<' and '>' freely.
        for (open, close) in [("<![CDATA[", "]]>"), ("<!--", "-->")] {
            if rest.starts_with(open) {
                let Some(end) = rest.find(close) else {
                    return false;
                };
                rest = &rest[end + close.len()..];
                continue 'next;
            }
        }
        rest = &rest[1..];
        let Some(end) = rest.find('>') else {
            return false;
        };
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("");
        if tag.starts_with('/') {
            if stack.pop() != Some(name) {
                return false;
            }
        } else {
            stack.push(name);
        }
    }
    stack.is_empty() && svg.contains("<svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOLDED: &str = "main;hakprof_measured_region;microbench::workloads::pair;hakmem::pool::heap::free 40\n\
                          main;hakprof_measured_region;microbench::workloads::pair;hakmem::front::alloc 60\n\
                          main;setup;other 5\n";

    #[test]
    fn folded_stacks_become_an_svg_naming_the_probes_functions() {
        let kept = keep_measured(FOLDED);
        assert_eq!(kept.lines().count(), 2, "setup stacks are left out");
        let svg = String::from_utf8(svg(&kept, "pool_path", "samples").unwrap()).unwrap();
        assert!(svg_well_formed(&svg));
        assert!(svg.contains("hakmem::pool::heap::free") && svg.contains("hakmem::front::alloc"));
        assert!(svg.contains("pool_path"));
        assert!(super::svg(&keep_measured("main;x 3\n"), "empty", "samples").is_err());
    }

    #[test]
    fn differential_and_step_graphs_render() {
        let pool = "hakprof_measured_region;pair;pool::alloc 50\nhakprof_measured_region;pair;pool::free 50\n";
        let reuse = "hakprof_measured_region;pair;pool::alloc 50\nhakprof_measured_region;pair;pool::free 50\nhakprof_measured_region;pair;learn::decide 80\n";
        let d = String::from_utf8(differential(pool, reuse, "reuse vs pool", "samples").unwrap())
            .unwrap();
        assert!(svg_well_formed(&d) && d.contains("learn::decide"));
        let folded = step_folded(
            &[
                (
                    "reuse_path",
                    vec![
                        Step {
                            name: "site hash".into(),
                            cost: 3.1,
                        },
                        Step {
                            name: "header write".into(),
                            cost: 0.8,
                        },
                    ],
                ),
                (
                    "pool_path",
                    vec![Step {
                        name: "freelist pop".into(),
                        cost: 1.4,
                    }],
                ),
            ],
            100.0,
        );
        assert!(folded.contains("reuse_path;site_hash 310\n"));
        let s = String::from_utf8(svg(&folded, "steps", "Ir/100").unwrap()).unwrap();
        assert!(svg_well_formed(&s) && s.contains("site_hash") && s.contains("freelist_pop"));
    }

    #[test]
    fn the_well_formedness_check_catches_broken_svg() {
        assert!(svg_well_formed(
            "<?xml version=\"1.0\"?><svg a=\"1\"><g><rect/></g></svg>"
        ));
        assert!(!svg_well_formed("<svg><g></svg>"));
        assert!(!svg_well_formed("<svg><g>"));
        assert!(svg_well_formed(
            "<svg><script><![CDATA[ if (a < b) { x = \"<g>\"; } ]]></script></svg>"
        ));
    }
}
