//! Return addresses to functions, after the run: a process's mappings (`/proc/<pid>/maps`)
//! place an address in its module (executable or shared library, PIE or not), and the
//! `addr2line` crate resolves it there to its frames (the inlined functions, then the one the
//! code belongs to; demangled: C, C++, Rust) with source lines where the module has debug
//! info; without it, to the nearest symbol at or below with the offset (`name+0x1c`, as perf
//! and gdb print it: a stripped module's static functions have no name of their own).

use serde::Serialize;
use std::collections::HashMap;

/// One frame: a function (inlined or not) at a return address.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// Symbolizes return addresses, one loaded module at a time.
#[derive(Default)]
pub struct Symbolizer {
    loaders: HashMap<String, Option<addr2line::Loader>>,
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
        let loader = self
            .loaders
            .entry(m.path.clone())
            .or_insert_with(|| addr2line::Loader::new(&m.path).ok());
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

/// Whether the ELF file at `path` is an executable linked at a fixed address (`ET_EXEC`).
fn is_fixed_address(path: &str) -> bool {
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    use object::Object;
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
