//! `hakprof sites diff A B`: two `sites.json` compared, per site and per sampled stack
//! (count, bytes, leaked, live at the heap's peak), sorted by the change, with a
//! differential flamegraph of bytes allocated by stack (inferno's `differential`: B drawn,
//! red where it allocates more than A), as heaptrack's `-d` compares two runs.
//!
//! Runs of one program load at different addresses, so sites and stacks are matched by
//! name: a site by its function, `file:line` and module; a stack by its process and frame
//! labels (`sites::frame_label`).

use crate::flame;
use crate::sites::{self, human_bytes, Cost, SitesReport};
use microbench::table::Table;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One site's or stack's figures in A and in B (zero where it does not appear).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Change {
    pub name: String,
    pub count: [i64; 2],
    pub bytes: [i64; 2],
    pub leaked: [i64; 2],
    pub live_at_peak: [i64; 2],
}

impl Change {
    /// B − A for each figure.
    fn deltas(&self) -> [i64; 4] {
        let d = |x: [i64; 2]| x[1] - x[0];
        [
            d(self.count),
            d(self.bytes),
            d(self.leaked),
            d(self.live_at_peak),
        ]
    }

    /// The sort key: the largest change in bytes of any kind, then in count.
    fn size(&self) -> (i64, i64) {
        let [c, b, l, p] = self.deltas();
        (b.abs().max(l.abs()).max(p.abs()), c.abs())
    }
}

#[derive(Debug, Serialize)]
pub struct SitesDiff {
    pub a: String,
    pub b: String,
    /// Whether the stacks' figures are estimates in A or B (sampled, not every one).
    pub stacks_estimated: bool,
    pub sites: Vec<Change>,
    pub stacks: Vec<Change>,
}

/// Reads a `sites.json` that `hakprof sites` wrote.
pub fn load(path: &Path) -> Result<SitesReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a sites.json of hakprof sites ({e})",
            path.display()
        )
    })
}

/// Adds `x` to side `side` of the change called `name`.
fn add(map: &mut BTreeMap<String, Change>, name: String, side: usize, x: [i64; 4]) {
    let c = map.entry(name.clone()).or_insert_with(|| Change {
        name,
        ..Change::default()
    });
    c.count[side] += x[0];
    c.bytes[side] += x[1];
    c.leaked[side] += x[2];
    c.live_at_peak[side] += x[3];
}

/// The changes from `a` to `b`, largest first (unchanged ones left out).
pub fn compare(a: &SitesReport, b: &SitesReport, a_name: &str, b_name: &str) -> SitesDiff {
    let (mut by_site, mut by_stack) = (BTreeMap::new(), BTreeMap::new());
    // The figures compared, in `Change`'s order.
    const COSTS: [Cost; 4] = [Cost::Allocations, Cost::Bytes, Cost::Leaked, Cost::Peak];
    for (side, r) in [a, b].into_iter().enumerate() {
        for s in &r.sites {
            let name = format!("{} ({}, {})", s.symbol, s.file_line(), module(&s.module));
            add(&mut by_site, name, side, COSTS.map(|c| c.of_site(s)));
        }
        for s in &r.sampled_stacks {
            let frames: Vec<String> = s.stack.iter().map(sites::frame_label).collect();
            let name = format!("{}: {}", s.process, frames.join(" ← "));
            add(&mut by_stack, name, side, COSTS.map(|c| c.of_stack(s)));
        }
    }
    let sorted = |m: BTreeMap<String, Change>| {
        let mut v: Vec<Change> = m.into_values().filter(|c| c.deltas() != [0; 4]).collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.size()));
        v
    };
    SitesDiff {
        a: a_name.to_string(),
        b: b_name.to_string(),
        stacks_estimated: !(a.stacks_exact && b.stacks_exact),
        sites: sorted(by_site),
        stacks: sorted(by_stack),
    }
}

/// `+1.5 KiB` / `-12` / `0`.
fn signed(d: i64, bytes: bool) -> String {
    let body = if bytes {
        human_bytes(d.abs())
    } else {
        d.abs().to_string()
    };
    match d {
        0 => "0".into(),
        d if d > 0 => format!("+{body}"),
        _ => format!("-{body}"),
    }
}

/// The top `n` changes as a table: each figure as A → B (Δ).
pub fn table(changes: &[Change], n: usize, what: &str) -> Table {
    let mut t = Table::new(&[
        what,
        "count A → B",
        "bytes A → B",
        "leaked A → B",
        "live at heap peak A → B",
    ]);
    let cell = |x: [i64; 2], bytes: bool| {
        let show = |v: i64| if bytes { human_bytes(v) } else { v.to_string() };
        format!(
            "{} → {} ({})",
            show(x[0]),
            show(x[1]),
            signed(x[1] - x[0], bytes)
        )
    };
    for c in changes.iter().take(n) {
        t.push(vec![
            c.name.clone(),
            cell(c.count, false),
            cell(c.bytes, true),
            cell(c.leaked, true),
            cell(c.live_at_peak, true),
        ]);
    }
    t
}

impl SitesDiff {
    pub fn markdown(&self, top: usize) -> String {
        let est = if self.stacks_estimated {
            " Stack figures are estimates from sampled stacks (run both with --sample-bytes 1 for exact ones); site figures are exact."
        } else {
            ""
        };
        format!(
            "# Call sites: `{}` → `{}`\n\nSorted by the largest change in bytes (allocated, leaked or live at the heap's peak); unchanged rows left out.{est}\n\n## Sites ({} changed)\n\n{}\n## Stacks ({} changed)\n\n{}\n`sites-diff.svg`: bytes allocated by stack in B, red where B allocates more than A, blue where less.\n",
            self.a,
            self.b,
            self.sites.len(),
            table(&self.sites, top, "site").markdown(),
            self.stacks.len(),
            table(&self.stacks, top, "stack").markdown(),
        )
    }
}

fn module(m: &str) -> String {
    Path::new(m)
        .file_name()
        .map_or(m.to_string(), |f| f.to_string_lossy().into_owned())
}

/// Compares the `sites.json` files `a` and `b`; writes `sites-diff.md`, `sites-diff.json`
/// and `sites-diff.svg` into `out`.
pub fn run(a: &Path, b: &Path, out: &Path, top: usize) -> Result<SitesDiff, String> {
    let (ra, rb) = (load(a)?, load(b)?);
    let diff = compare(&ra, &rb, &a.display().to_string(), &b.display().to_string());
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let put = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    };
    put("sites-diff.md", diff.markdown(top).as_bytes())?;
    let json = serde_json::to_string_pretty(&diff).map_err(|e| e.to_string())?;
    put("sites-diff.json", json.as_bytes())?;
    let (before, _) = ra.folded_cost(Cost::Bytes);
    let (after, _) = rb.folded_cost(Cost::Bytes);
    let title = format!("bytes allocated by stack: {} → {}", diff.a, diff.b);
    let svg = if after.is_empty() && before.is_empty() {
        return Err("neither report counted any allocation".into());
    } else {
        flame::differential(&before, &after, &title, "bytes")?
    };
    put("sites-diff.svg", &svg)?;
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sites::from_stats;

    fn report(count: u64, leaked: i64) -> SitesReport {
        let stats = serde_json::json!({
            "sites_mode": true, "maps": "",
            "process": { "name": "app", "exe": "app", "pid": 1 },
            "sites": [
                { "site": 5, "addr": 0, "count": count, "bytes": count * 100,
                  "live_bytes": leaked, "sizes": [],
                  "location": { "file": "src/a.rs", "line": 1, "column": 1 } },
                { "site": 6, "addr": 0, "count": 3, "bytes": 300, "live_bytes": 0, "sizes": [],
                  "location": { "file": "src/b.rs", "line": 2, "column": 1 } },
            ],
        });
        from_stats("app", &[], &[stats], Some(0)).unwrap()
    }

    #[test]
    fn sites_are_matched_by_name_and_sorted_by_the_change() {
        let d = compare(&report(10, 0), &report(30, 500), "a", "b");
        assert_eq!(
            d.sites.len(),
            1,
            "the unchanged site is left out: {:?}",
            d.sites
        );
        let c = &d.sites[0];
        assert!(c.name.starts_with("src/a.rs:1:1"), "{}", c.name);
        assert_eq!(
            (c.count, c.bytes, c.leaked),
            ([10, 30], [1000, 3000], [0, 500])
        );
        let md = d.markdown(10);
        assert!(md.contains("+2000 B") && md.contains("+20"), "{md}");
        // The other way round, the same rows with the signs turned.
        let back = compare(&report(30, 500), &report(10, 0), "b", "a");
        assert!(back.markdown(10).contains("-2000 B"));
    }
}
