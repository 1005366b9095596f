//! What each allocator does with the heap bugs an attacker uses (`c/hardening.c`: a forged
//! free-list link written after a free, double frees, interior and never-allocated
//! pointers, an overflow into a free block): each case in its own process under each
//! allocator, classified by how the process ended. `make hardening` prints the table the
//! README shows; `tests/hardening.rs` holds hakmem to it.

use crate::native::{self, Allocator};
use crate::table::Table;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

/// The cases of `c/hardening.c`: name and what it does.
pub const CASES: [(&str, &str); 7] = [
    ("forge", "use-after-free write of a chosen address (a static buffer) into a freed block's first word, then two mallocs"),
    ("forge_in_page", "the same with a link to an interior point of another block of the page, encoded as hakmem encodes links"),
    ("double_top", "free(p) twice in a row"),
    ("double_deep", "free(p); free(q); free(p)"),
    ("interior", "free(p + 16) of a live 64 B block"),
    ("never_allocated", "free of a block-aligned address 512 B past the only live block"),
    ("overflow", "a 64 B block overflowed by 32 bytes into the free block after it, then two mallocs"),
];

/// How a case ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Killed by SIGABRT: the allocator refused, with the line it printed (if any).
    Aborted(String),
    /// Killed by another signal (a crash, not a diagnosis).
    Crashed(i32),
    /// The program ran on: the bug went unnoticed (`bad`) or had no visible effect.
    Returned { bad: bool, what: String },
}

impl Outcome {
    /// One table cell (an abort's message up to its first address).
    pub fn cell(&self) -> String {
        match self {
            Outcome::Aborted(line) if line.is_empty() => "aborts".into(),
            Outcome::Aborted(line) => format!("aborts: `{}`", without_addresses(line)),
            Outcome::Crashed(sig) => format!("crashes (signal {sig})"),
            Outcome::Returned { bad: true, what } => format!("**{what}**"),
            Outcome::Returned { bad: false, what } => what.clone(),
        }
    }
}

/// `line` with each hexadecimal address (`0x…`) shown as `…`: the table stays the same
/// from run to run.
fn without_addresses(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        out.push('…');
        rest = rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out + rest
}

/// Runs `case` of the built program `exe` under `alloc` with `env`, and classifies how it
/// ended. Errors when the wrong allocator served it.
pub fn run_case(
    exe: &Path,
    alloc: &Allocator,
    case: &str,
    env: &[(&str, &str)],
) -> Result<Outcome, String> {
    let mut cmd = native::command(alloc, exe);
    cmd.arg(case).envs(env.iter().copied());
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    native::check_served(alloc, &stderr)?;
    let said = stderr
        .lines()
        .find(|l| !l.starts_with("served_by=") && !l.starts_with("pid=") && !l.is_empty())
        .unwrap_or("")
        .to_string();
    Ok(match out.status.signal() {
        Some(libc::SIGABRT) => Outcome::Aborted(said),
        Some(sig) => Outcome::Crashed(sig),
        None => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            match text.split_once(": ") {
                Some(("bad", what)) => Outcome::Returned {
                    bad: true,
                    what: what.into(),
                },
                Some(("harmless", what)) => Outcome::Returned {
                    bad: false,
                    what: what.into(),
                },
                _ => return Err(format!("{case} under {}: {text:?}", alloc.name)),
            }
        }
    })
}

/// The table: a row per case, a column per allocator (hakmem in its default mode and with
/// `HAKMEM_CHECK=1`, then glibc and the peers).
pub fn table(exe: &Path, allocators: &[Allocator]) -> Result<Table, String> {
    /// A column: its title, the allocator, and the environment it runs with.
    type Column<'a> = (String, &'a Allocator, Vec<(&'static str, &'static str)>);
    let mut columns: Vec<Column> = Vec::new();
    for a in allocators {
        columns.push((a.name.to_string(), a, vec![]));
        if a.name == "hakmem" {
            columns.push((
                "hakmem, HAKMEM_CHECK=1".into(),
                a,
                vec![("HAKMEM_CHECK", "1")],
            ));
        }
    }
    let mut header = vec!["case"];
    header.extend(columns.iter().map(|c| c.0.as_str()));
    let mut t = Table::new(&header);
    for (case, what) in CASES {
        let mut row = vec![format!("`{case}`: {what}")];
        for (_, alloc, env) in &columns {
            row.push(run_case(exe, alloc, case, env)?.cell());
        }
        t.push(row);
    }
    Ok(t)
}

/// Builds `c/hardening.c`.
pub fn build() -> Result<std::path::PathBuf, String> {
    native::build("hardening.c")
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_elided() {
        assert_eq!(
            super::without_addresses("free(): invalid pointer 0x7f00aa10: double free"),
            "free(): invalid pointer …: double free"
        );
        assert_eq!(super::without_addresses("no address"), "no address");
    }
}
