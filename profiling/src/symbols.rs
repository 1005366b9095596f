//! Return addresses to functions, after the run: a process's mappings (`/proc/<pid>/maps`)
//! place an address in its module (executable or shared library, PIE or not), and the
//! `addr2line` crate resolves it there to its frames (the inlined functions, then the one the
//! code belongs to; demangled: C, C++, Rust) with source lines where the module has debug
//! info; without it, to the nearest symbol at or below with the offset (`name+0x1c`, as perf
//! and gdb print it: a stripped module's static functions have no name of their own).
//!
//! A module whose debug info was split off (Debian's `-dbg` and `-dbgsym` packages) is read
//! from its separate debug file, found as gdb finds it (`debug_file`): by build id under
//! `/usr/lib/debug/.build-id/`, else by its `.gnu_debuglink` name; with a `dwz` file named by
//! `.gnu_debugaltlink` as the supplementary object. The `addr2line` crate's `Loader` reads
//! one file and its supplement but does not look for either (its source says so), so that
//! search is here; the `object` crate reads the notes and sections that name them.

use object::Object;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One frame: a function (inlined or not) at a return address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    pub symbol: String,
    pub module: String,
    pub file: Option<String>,
    pub line: Option<u32>,
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

/// Where gdb looks for separate debug files (`debug-file-directory`).
const DEBUG_ROOT: &str = "/usr/lib/debug";

/// The separate debug file of the ELF file `path`, if one is installed: by build id
/// (`/usr/lib/debug/.build-id/ab/cdef….debug`), else by its `.gnu_debuglink` name next to
/// it, in its `.debug/` folder, or under `/usr/lib/debug/` + its folder (gdb's order). A
/// candidate whose build id differs from the module's is not its debug file.
pub fn debug_file(path: &Path) -> Option<PathBuf> {
    debug_file_under(path, Path::new(DEBUG_ROOT))
}

fn debug_file_under(path: &Path, root: &Path) -> Option<PathBuf> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let id = file.build_id().ok().flatten().filter(|id| id.len() >= 2);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let same_build = |candidate: &Path| {
        let Some(id) = id else { return true };
        let Ok(d) = std::fs::read(candidate) else {
            return false;
        };
        object::File::parse(&*d)
            .ok()
            .and_then(|f| f.build_id().ok().flatten().map(|x| x == id))
            .unwrap_or(true)
    };
    if let Some(id) = id {
        let p = root
            .join(".build-id")
            .join(hex(&id[..1]))
            .join(format!("{}.debug", hex(&id[1..])));
        if p.is_file() {
            return Some(p);
        }
    }
    let (name, _crc) = file.gnu_debuglink().ok().flatten()?;
    let name = std::str::from_utf8(name).ok()?;
    let dir = path.parent()?;
    let under_root = root.join(dir.strip_prefix("/").unwrap_or(dir));
    [
        dir.join(name),
        dir.join(".debug").join(name),
        under_root.join(name),
    ]
    .into_iter()
    .find(|c| c.is_file() && c != path && same_build(c))
}

/// The `dwz` supplementary file that the debug file `debug` names (`.gnu_debugaltlink`:
/// absolute, or relative to `debug`'s folder).
fn alt_file(debug: &Path) -> Option<PathBuf> {
    let data = std::fs::read(debug).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let (name, _id) = file.gnu_debugaltlink().ok().flatten()?;
    let name = Path::new(std::str::from_utf8(name).ok()?);
    let p = debug.parent()?.join(name); // `join` keeps an absolute `name` as it is
    p.is_file().then_some(p)
}

/// Whether the ELF file `path` has DWARF line or function info of its own.
fn has_dwarf(path: &Path) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    object::File::parse(&*data).is_ok_and(|f| f.section_by_name(".debug_info").is_some())
}

/// Symbolizes return addresses, one loaded module at a time.
#[derive(Default)]
pub struct Symbolizer {
    loaders: HashMap<String, Option<addr2line::Loader>>,
    /// Modules read from a separate debug file, and which.
    pub debug_files: HashMap<String, PathBuf>,
    /// Non-PIE executables are linked at a fixed address: their image addresses are the
    /// run-time ones.
    fixed: HashMap<String, bool>,
}

impl Symbolizer {
    /// The frames of the call that returned to `addr` (`addr - 1` is inside it), the
    /// innermost first: the inlined functions, then the function the code belongs to.
    /// Never empty: without debug info, the nearest symbol at or below with the offset.
    pub fn resolve(&mut self, maps: &[Mapping], addr: u64) -> Vec<Frame> {
        let unknown = |module: &str| Frame {
            symbol: format!("{addr:#x}"),
            module: module.to_string(),
            file: None,
            line: None,
        };
        let Some((m, in_image)) = place(maps, addr) else {
            return vec![unknown("?")];
        };
        let fixed = *self
            .fixed
            .entry(m.path.clone())
            .or_insert_with(|| is_fixed_address(&m.path));
        let probe = if fixed { addr } else { in_image } - 1;
        if !self.loaders.contains_key(&m.path) {
            let (loader, debug) = open(Path::new(&m.path));
            if let Some(d) = debug {
                self.debug_files.insert(m.path.clone(), d);
            }
            self.loaders.insert(m.path.clone(), loader);
        }
        let loader = self.loaders.get_mut(&m.path).expect("inserted above");
        let module = m.path.clone();
        let Some(l) = loader else {
            return vec![unknown(&module)];
        };
        let mut frames = Vec::new();
        if let Ok(mut it) = l.find_frames(probe) {
            while let Ok(Some(f)) = it.next() {
                let Some(name) = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|c| c.into_owned()))
                else {
                    break;
                };
                let (file, line) = f
                    .location
                    .map_or((None, None), |loc| (loc.file.map(str::to_string), loc.line));
                frames.push(Frame {
                    symbol: name,
                    module: module.clone(),
                    file,
                    line,
                });
            }
        }
        if !frames.is_empty() {
            return frames;
        }
        // No debug info: the nearest symbol at or below, with the offset (as perf and gdb
        // print it), since a stripped module's static functions have no name of their own.
        match l.find_symbol_info(probe) {
            Some(s) => {
                let name = addr2line::demangle_auto(s.name().into(), None).into_owned();
                vec![Frame {
                    symbol: format!("{name}+{:#x}", probe + 1 - s.address()),
                    module,
                    file: None,
                    line: None,
                }]
            }
            None => vec![unknown(&module)],
        }
    }
}

/// The loader for the module at `path`: its separate debug file (and that one's `dwz`
/// supplement) when the module has no DWARF of its own and one is installed, else the
/// module itself. The debug file used, if any.
fn open(path: &Path) -> (Option<addr2line::Loader>, Option<PathBuf>) {
    if !has_dwarf(path) {
        if let Some(debug) = debug_file(path) {
            let sup = alt_file(&debug);
            if let Ok(l) = addr2line::Loader::new_with_sup(&debug, sup.as_deref()) {
                return (Some(l), Some(debug));
            }
        }
    }
    (addr2line::Loader::new(path).ok(), None)
}

/// Whether the ELF file at `path` is an executable linked at a fixed address (`ET_EXEC`).
fn is_fixed_address(path: &str) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    object::File::parse(&*data).is_ok_and(|f| f.kind() == object::ObjectKind::Executable)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "100000000000-100000400000 rw-p 00000000 00:00 0 \n\
        55af504f4000-55af504f5000 r--p 00000000 fe:00 10010860                   /tmp/two_sites\n\
        55af504f5000-55af504f6000 r-xp 00001000 fe:00 10010860                   /tmp/two_sites\n\
        7fcac8c00000-7fcac8c28000 r--p 00000000 fe:00 1234 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
        7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";

    /// With `libc6-dbg` installed (`make test` installs it), an address in the C library's
    /// static `__alloc_dir` reads as that function and its source line, from the separate
    /// debug file found by build id; the library alone names only the nearest exported
    /// symbol below it.
    #[test]
    fn a_stripped_library_is_read_through_its_separate_debug_file() {
        let libc = "/lib/x86_64-linux-gnu/libc.so.6";
        let debug = debug_file(Path::new(libc)).expect("libc6-dbg is installed (make test-tools)");
        assert!(
            debug.starts_with("/usr/lib/debug/.build-id/"),
            "{}",
            debug.display()
        );
        let data = std::fs::read(&debug).unwrap();
        let file = object::File::parse(&*data).unwrap();
        use object::ObjectSymbol;
        let at = file
            .symbols()
            .find(|s| s.name() == Ok("__alloc_dir"))
            .expect("the debug file's symbol table has the static function")
            .address();
        let base = 0x7f00_0000_0000u64;
        let maps = parse_maps(&format!(
            "{base:x}-{:x} r-xp 00000000 fe:00 1 {libc}\n",
            base + (64 << 20)
        ));
        let frames = Symbolizer::default().resolve(&maps, base + at + 0x21);
        let f = frames.last().unwrap();
        assert_eq!(f.symbol, "__alloc_dir", "{frames:?}");
        assert!(
            f.file.as_deref().is_some_and(|p| p.ends_with("opendir.c")),
            "{f:?}"
        );
        // The library on its own: a nearest-symbol guess, which keeps its offset.
        let plain = addr2line::Loader::new(libc).unwrap();
        let guess = plain
            .find_symbol_info(at + 0x20)
            .map(|s| s.name().to_string());
        assert_ne!(
            guess.as_deref(),
            Some("__alloc_dir"),
            "the test shows nothing"
        );
    }

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
}
