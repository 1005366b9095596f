//! The layer order of `src/` is checked, not only drawn: every module may use only
//! modules listed before it in `ORDER` (so no import goes up, and no two modules use each
//! other, directly or through a loop). A module is a file; `a::b` means `src/a/b.rs` and
//! `a` means `src/a.rs` or `src/a/mod.rs`. Every `crate::…` path counts (in `use` lines,
//! braces expanded, and in code), and so do `super::…` paths and a `mod.rs`'s paths into
//! its own children. Comments do not count.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first (ARCHITECTURE.md draws the same order).
const ORDER: &[&str] = &[
    // 1. base
    "os",
    "track",
    "tls",
    "lock",
    "diag",
    "config",
    // 2. pure pieces
    "size_class",
    "header",
    "site",
    // 3. the pool
    "pool::list",
    "pool::page",
    "pool::segment",
    "pool::heap",
    "pool::pages",
    "pool::free",
    "pool::collect",
    "pool::alloc",
    "pool::thread",
    "pool",
    // 4. learning
    "learn::math",
    "learn::rng",
    "learn::p2",
    "learn::elo",
    "learn::ucb1",
    "learn::lifecycle",
    "learn::sites",
    "learn::stacks",
    "learn",
    // 5. big blocks
    "big::registry",
    "big::cache",
    "big::madvise",
    "big",
    // 6. reports, process and thread set-up
    "footprint",
    "stats",
    "init",
    // 7. the fronts (policy)
    "front::small",
    "front::resize",
    "front::learned",
    "front::reuse",
    "front",
    "front::census",
    "front::api",
    "front::cpath",
    // 8. entry points
    "global",
    "ffi",
    "lib",
];

fn module_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(&root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                out.push((parts.join("::"), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out
}

/// The code of a file without its comments (line comments and doc comments) and without
/// its unit tests (`#[cfg(test)] mod …`, at the end of a file by convention).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `prefix{a, b::c, d::{e, f}}` into `prefix a`, `prefix b::c`, … (one path each).
fn expand(prefix: &str, group: &str, out: &mut Vec<String>) {
    let mut depth = 0;
    let mut start = 0;
    let bytes = group.as_bytes();
    let mut items = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let Some(open) = item.find('{') {
            let inner = &item[open + 1..item.rfind('}').unwrap()];
            expand(&format!("{prefix}{}", &item[..open]), inner, out);
        } else {
            out.push(format!("{prefix}{item}"));
        }
    }
}

/// Every path this file's code names, made absolute (`crate::`-relative, without `crate::`).
fn paths_named(module: &str, code: &str, children: &[String]) -> Vec<String> {
    let is_mod_rs = children
        .iter()
        .any(|c| c.starts_with(&format!("{module}::")));
    // `super::` is the parent of this file's module: rewrite it as a `crate::` path.
    let mut parts: Vec<&str> = module.split("::").collect();
    parts.pop();
    let parent = parts.join("::");
    let absolute = if parent.is_empty() {
        "crate::".to_string()
    } else {
        format!("crate::{parent}::")
    };
    let flat = code
        .replace(['\n', '\r'], " ")
        .replace("super::", &absolute);
    let mut raw = Vec::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(after.len());
        let path = &after[..end];
        if let Some(group) = after[end..].strip_prefix('{') {
            let close = matching_brace(group);
            expand(path, &group[..close], &mut raw);
            rest = &group[close..];
        } else {
            raw.push(path.to_string());
            rest = &after[end..];
        }
    }
    // A `mod.rs` names its own children without `crate::` (`heap::alloc`).
    if is_mod_rs {
        for word in flat.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            let first = word.split("::").next().unwrap_or("");
            if word.contains("::") && children.iter().any(|c| c == &format!("{module}::{first}")) {
                raw.push(format!("{module}::{word}"));
            }
        }
    }
    raw.into_iter()
        .map(|p| p.trim_end_matches(':').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    s.len()
}

/// The module of `ORDER` a path lands in: its longest prefix that is a module.
fn module_of(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split("::").collect();
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("::"))
        .find_map(|m| ORDER.iter().copied().find(|o| *o == m))
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let files = module_files();
    let names: Vec<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let listed: BTreeSet<&str> = ORDER.iter().copied().collect();
    let unlisted: Vec<&String> = names
        .iter()
        .filter(|m| !listed.contains(m.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules missing from ORDER: {unlisted:?}"
    );
    let rank = |m: &str| ORDER.iter().position(|o| *o == m).unwrap();
    let mut violations = Vec::new();
    for (module, text) in &files {
        for path in paths_named(module, &code_of(text), &names) {
            let Some(target) = module_of(&path) else {
                continue; // a re-export or an item of the root
            };
            if target == module {
                continue;
            }
            if rank(target) >= rank(module) {
                violations.push(format!("{module} uses {path} ({target} is not below it)"));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "layer order broken:\n{}",
        violations.join("\n")
    );
}

/// The checker itself: an upward path, a braced group and a `super::` path are all seen.
#[test]
fn the_checker_sees_paths_in_every_form() {
    let names = vec![
        "pool".to_string(),
        "pool::heap".to_string(),
        "pool::page".to_string(),
    ];
    let code = code_of(
        "use crate::{big::cache, lock::{rank, SpinLock}};\n\
         use super::page::Block; // crate::front in a comment\n\
         fn f() { crate::init::ensure(); }",
    );
    let mut got = paths_named("pool::heap", &code, &names);
    got.sort();
    assert_eq!(
        got,
        [
            "big::cache",
            "init::ensure",
            "lock::SpinLock",
            "lock::rank",
            "pool::page::Block"
        ]
    );
    let from_mod = paths_named("pool", "pub use heap::{alloc, free};", &names);
    assert!(
        from_mod.iter().any(|p| module_of(p) == Some("pool::heap")),
        "a mod.rs's paths into its children are seen: {from_mod:?}"
    );
    assert_eq!(module_of("front::api::malloc"), Some("front::api"));
    assert_eq!(module_of("lock::rank::HEAPS"), Some("lock"));
}
