//! `hakprof sites`: who allocates what in any program. The program runs under the preload
//! in the sites mode (`HAKMEM_SITES=1`: every C-ABI allocation counted per call site, its
//! return address kept) and writes its stats JSON at exit with its mappings
//! (`/proc/self/maps`). Symbolization happens here, after the run, never inside the
//! allocator: each site's return address is placed in its module (executable or shared
//! library, PIE or not) and resolved with the `addr2line` crate to a function (demangled:
//! C, C++, Rust) and a source line where the module has debug info; otherwise to the
//! nearest symbol at or below it with the offset (`name+0x1c`: a stripped module's static
//! functions have no name of their own).
//!
//! Not yet: call stacks and flamegraphs per site, the HTML and SVG pages, the sites section
//! of `make profile`'s report.

use microbench::native;
use microbench::table::Table;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One call site, symbolized.
#[derive(Clone, Debug, Serialize)]
pub struct SiteRow {
    pub symbol: String,
    pub module: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// The return address as the process ran, and inside its module.
    pub addr: u64,
    pub count: u64,
    pub bytes: u64,
    pub peak_live_bytes: i64,
    pub live_at_exit: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SitesReport {
    pub program: String,
    pub pid: u64,
    pub exit_status: Option<i32>,
    /// Sorted by bytes, largest first.
    pub sites: Vec<SiteRow>,
    /// Allocations counted in the table's shared "other" entry (the table holds 256
    /// sites; a site that finds no free entry within 8 probes shares it).
    pub other_count: u64,
}

/// A mapping of `/proc/<pid>/maps`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

/// Reads `/proc/<pid>/maps` text: the file-backed mappings.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, _perms, offset) = (f.next()?, f.next()?, f.next()?);
            let path = f.nth(2)?;
            if !path.starts_with('/') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_string(),
            })
        })
        .collect()
}

/// The module holding `addr` and the address inside its file's image (mapping start
/// subtracted, file offset added: for the ELF objects the loader maps, file offsets and
/// virtual addresses of the loadable segments coincide up to the first segment's address,
/// which is 0 for PIE executables and shared libraries).
pub fn place(maps: &[Mapping], addr: u64) -> Option<(&Mapping, u64)> {
    let m = maps.iter().find(|m| m.start <= addr && addr < m.end)?;
    Some((m, addr - m.start + m.offset))
}

/// Symbolizes return addresses, one loaded module at a time.
#[derive(Default)]
pub struct Symbolizer {
    loaders: HashMap<String, Option<addr2line::Loader>>,
    /// Non-PIE executables are linked at a fixed address: their image addresses are the
    /// run-time ones.
    fixed: HashMap<String, bool>,
}

impl Symbolizer {
    /// (symbol, file, line) of the call that returned to `addr` (`addr - 1` is inside it).
    pub fn resolve(
        &mut self,
        maps: &[Mapping],
        addr: u64,
    ) -> (String, String, Option<String>, Option<u32>) {
        let Some((m, in_image)) = place(maps, addr) else {
            return (format!("{addr:#x}"), "?".into(), None, None);
        };
        let fixed = *self
            .fixed
            .entry(m.path.clone())
            .or_insert_with(|| is_fixed_address(&m.path));
        let probe = if fixed { addr } else { in_image } - 1;
        let loader = self
            .loaders
            .entry(m.path.clone())
            .or_insert_with(|| addr2line::Loader::new(&m.path).ok());
        let module = m.path.clone();
        let Some(l) = loader else {
            return (format!("{addr:#x}"), module, None, None);
        };
        // The innermost frame is the function that made the call (inlined or not).
        if let Ok(mut frames) = l.find_frames(probe) {
            if let Ok(Some(f)) = frames.next() {
                let name = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|c| c.into_owned()));
                let (file, line) = f
                    .location
                    .map_or((None, None), |loc| (loc.file.map(str::to_string), loc.line));
                if let Some(name) = name {
                    return (name, module, file, line);
                }
            }
        }
        // No debug info: the nearest symbol at or below, with the offset (as perf and gdb
        // print it), since a stripped module's static functions have no name of their own.
        let sym = l.find_symbol_info(probe).map(|s| {
            let name = addr2line::demangle_auto(s.name().into(), None).into_owned();
            format!("{name}+{:#x}", probe + 1 - s.address())
        });
        (
            sym.unwrap_or_else(|| format!("{addr:#x}")),
            module,
            None,
            None,
        )
    }
}

/// Whether the ELF file at `path` is an executable linked at a fixed address (`ET_EXEC`).
fn is_fixed_address(path: &str) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    use object::Object;
    object::File::parse(&*data).is_ok_and(|f| f.kind() == object::ObjectKind::Executable)
}

/// Builds the report from the stats JSON the program wrote.
pub fn from_stats(
    program: &str,
    json: &Value,
    exit_status: Option<i32>,
) -> Result<SitesReport, String> {
    if json["sites_mode"] != Value::Bool(true) {
        return Err("the stats were not written in the sites mode (HAKMEM_SITES=1)".into());
    }
    let maps = parse_maps(json["maps"].as_str().unwrap_or(""));
    let mut sym = Symbolizer::default();
    let mut sites = Vec::new();
    for s in json["sites"].as_array().into_iter().flatten() {
        if s["site"] == "other" {
            continue;
        }
        let addr = s["addr"].as_u64().unwrap_or(0);
        let (symbol, module, file, line) = if addr == 0 {
            ("(unknown caller)".to_string(), "?".to_string(), None, None)
        } else {
            sym.resolve(&maps, addr)
        };
        sites.push(SiteRow {
            symbol,
            module,
            file,
            line,
            addr,
            count: s["count"].as_u64().unwrap_or(0),
            bytes: s["bytes"].as_u64().unwrap_or(0),
            peak_live_bytes: s["peak_live_bytes"].as_i64().unwrap_or(0),
            live_at_exit: s["live_bytes"].as_i64().unwrap_or(0),
        });
    }
    sites.sort_by_key(|s| std::cmp::Reverse(s.bytes));
    Ok(SitesReport {
        program: program.to_string(),
        pid: json["process"]["pid"].as_u64().unwrap_or(0),
        exit_status,
        sites,
        other_count: json["other_sites"].as_u64().unwrap_or(0),
    })
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
            "peak live bytes",
            "live at exit",
        ]);
        let file_line = |r: &SiteRow| match (&r.file, r.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            (Some(f), None) => f.clone(),
            _ => "–".into(),
        };
        for r in self.sites.iter().take(n) {
            t.push(vec![
                r.symbol.clone(),
                file_line(r),
                Path::new(&r.module)
                    .file_name()
                    .map_or(r.module.clone(), |f| f.to_string_lossy().into_owned()),
                r.count.to_string(),
                r.bytes.to_string(),
                r.peak_live_bytes.to_string(),
                r.live_at_exit.to_string(),
            ]);
        }
        let rest = &self.sites[self.sites.len().min(n)..];
        if !rest.is_empty() || self.other_count > 0 {
            t.push(vec![
                format!(
                    "other ({} more sites; {} allocations past the 256-site table)",
                    rest.len(),
                    self.other_count
                ),
                String::new(),
                String::new(),
                (rest.iter().map(|r| r.count).sum::<u64>() + self.other_count).to_string(),
                rest.iter().map(|r| r.bytes).sum::<u64>().to_string(),
                String::new(),
                rest.iter().map(|r| r.live_at_exit).sum::<i64>().to_string(),
            ]);
        }
        t
    }
}

/// Runs `program args` under the preload in the sites mode; writes `sites.json` and
/// `sites.md` into `out`; returns the report.
pub fn run(program: &str, args: &[String], out: &Path, top: usize) -> Result<SitesReport, String> {
    let lib = native::hakmem()?.lib.ok_or("hakmem has no library")?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let raw: PathBuf = out.join("stats-%p.json");
    let mut child = Command::new(program)
        .args(args)
        .env("LD_PRELOAD", &lib)
        .env("HAKMEM_SITES", "1")
        .env("HAKMEM_STATS_JSON", &raw)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let pid = child.id();
    let status = child.wait().map_err(|e| e.to_string())?;
    let file = out.join(format!("stats-{pid}.json"));
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{}: {e} (the program wrote no stats: did it run under the preload?)",
            file.display()
        )
    })?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let report = from_stats(program, &json, status.code())?;
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("sites.json"), pretty).map_err(|e| e.to_string())?;
    let md = format!(
        "# Call sites of `{program}` (pid {})\n\nEvery allocation through the C ABI, counted per call site in hakmem's sites mode; sorted by bytes.\n\n{}",
        report.pid,
        report.table(top).markdown()
    );
    std::fs::write(out.join("sites.md"), md).map_err(|e| e.to_string())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "100000000000-100000400000 rw-p 00000000 00:00 0 \n\
        55af504f4000-55af504f5000 r--p 00000000 fe:00 10010860                   /tmp/two_sites\n\
        55af504f5000-55af504f6000 r-xp 00001000 fe:00 10010860                   /tmp/two_sites\n\
        7fcac8c00000-7fcac8c28000 r--p 00000000 fe:00 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
        7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";

    #[test]
    fn a_return_address_is_placed_in_its_module_image() {
        let maps = parse_maps(MAPS);
        assert_eq!(
            maps.len(),
            3,
            "anonymous and [stack] mappings are not modules"
        );
        let (m, a) = place(&maps, 0x55af504f5184).unwrap();
        assert_eq!((m.path.as_str(), a), ("/tmp/two_sites", 0x1184));
        let (m, a) = place(&maps, 0x7fcac8c000ff).unwrap();
        assert!(m.path.ends_with("libc.so.6") && a == 0xff);
        assert!(place(&maps, 0x10).is_none());
    }

    #[test]
    fn stats_not_from_the_sites_mode_are_refused() {
        let e = from_stats("p", &serde_json::json!({ "sites": [] }), Some(0)).unwrap_err();
        assert!(e.contains("HAKMEM_SITES"), "{e}");
    }
}
