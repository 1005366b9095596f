//! A shadow model of the C allocation ABI: applies a sequence of alloc / realloc / free /
//! usable-size operations to hakmem and checks, after each, what an allocator promises:
//! no two live blocks overlap, contents survive `realloc`, the usable size covers the
//! request, the alignment is honoured. Shared by the seeded driver that `make test` runs
//! (`tests/fuzz_model.rs`) and the cargo-fuzz target (`fuzz/fuzz_targets/ops.rs`).

use hakmem::ffi::*;
use std::collections::BTreeMap;
use std::ffi::c_void;

#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Allocate `size` bytes aligned to 2^`align_log` (0..=20; 4 and below: plain malloc).
    Alloc {
        size: usize,
        align_log: u8,
    },
    Realloc {
        idx: usize,
        size: usize,
    },
    Free {
        idx: usize,
    },
    Usable {
        idx: usize,
    },
}

/// Turns fuzzer bytes into operations (5 bytes each).
pub fn decode(data: &[u8]) -> Vec<Op> {
    data.chunks_exact(5)
        .map(|c| {
            let v = u32::from_le_bytes([c[1], c[2], c[3], c[4]]) as usize;
            let size = match c[0] >> 6 {
                0 | 1 => v % 512,
                2 => v % 70_000,
                _ => v % (4 << 20),
            };
            match c[0] % 8 {
                0..=3 => Op::Alloc {
                    size,
                    align_log: (c[0] >> 2) % 21,
                },
                4 | 5 => Op::Free { idx: v },
                6 => Op::Realloc { idx: v, size },
                _ => Op::Usable { idx: v },
            }
        })
        .collect()
}

struct Live {
    p: usize,
    size: usize,
    align: usize,
    seed: u8,
}

fn fill(b: &Live) {
    // SAFETY: the block holds `size` bytes.
    unsafe { std::ptr::write_bytes(b.p as *mut u8, b.seed, b.size) };
}

fn intact(p: usize, len: usize, seed: u8) -> bool {
    // SAFETY: callers pass live blocks with at least `len` bytes.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }
        .iter()
        .all(|&x| x == seed)
}

/// The shadow: live blocks, and their address ranges for the overlap check.
#[derive(Default)]
pub struct Model {
    live: Vec<Live>,
    ranges: BTreeMap<usize, usize>,
    next_seed: u8,
    pub ops: u64,
}

impl Model {
    fn claim(&mut self, p: usize, usable: usize) -> Result<(), String> {
        if let Some((&s, &e)) = self.ranges.range(..p + usable.max(1)).next_back() {
            if e > p {
                return Err(format!(
                    "block {p:#x}+{usable} overlaps live block {s:#x}..{e:#x}"
                ));
            }
        }
        self.ranges.insert(p, p + usable.max(1));
        Ok(())
    }

    fn add(&mut self, p: usize, size: usize, align: usize) -> Result<(), String> {
        if !p.is_multiple_of(align) {
            return Err(format!("{p:#x} is not {align}-aligned"));
        }
        // SAFETY: a live block of ours.
        let usable = unsafe { hak_malloc_usable_size(p as *mut c_void) };
        if usable < size {
            return Err(format!("usable size {usable} < requested {size}"));
        }
        self.claim(p, usable)?;
        self.next_seed = self.next_seed.wrapping_add(37) | 1;
        let b = Live {
            p,
            size,
            align,
            seed: self.next_seed,
        };
        fill(&b);
        self.live.push(b);
        Ok(())
    }

    pub fn apply(&mut self, op: Op) -> Result<(), String> {
        self.ops += 1;
        match op {
            Op::Alloc { size, align_log } => {
                let (p, align) = if align_log <= 4 {
                    (hak_malloc(size) as usize, 16)
                } else {
                    let align = 1usize << align_log;
                    let mut out: *mut c_void = std::ptr::null_mut();
                    // SAFETY: `out` is a valid out-pointer.
                    let r = unsafe { hak_posix_memalign(&mut out, align, size) };
                    if r != 0 {
                        return Err(format!("posix_memalign({align}, {size}) = {r}"));
                    }
                    (out as usize, align)
                };
                if p == 0 {
                    return Err(format!("allocation of {size} bytes failed"));
                }
                self.add(p, size, align)
            }
            Op::Free { idx } if !self.live.is_empty() => {
                let b = self.live.swap_remove(idx % self.live.len());
                if !intact(b.p, b.size, b.seed) {
                    return Err(format!(
                        "block {:#x} ({} bytes) corrupted before free",
                        b.p, b.size
                    ));
                }
                self.ranges.remove(&b.p);
                // SAFETY: a live block of ours, freed once.
                unsafe { hak_free(b.p as *mut c_void) };
                Ok(())
            }
            Op::Realloc { idx, size } if !self.live.is_empty() => {
                let i = idx % self.live.len();
                let (old_p, old_size, seed) =
                    (self.live[i].p, self.live[i].size, self.live[i].seed);
                if !intact(old_p, old_size, seed) {
                    return Err(format!("block {old_p:#x} corrupted before realloc"));
                }
                let size = size.max(1); // realloc(p, 0) frees (glibc); tested elsewhere
                                        // SAFETY: a live block of ours.
                let q = unsafe { hak_realloc(old_p as *mut c_void, size) } as usize;
                if q == 0 {
                    return Err(format!("realloc to {size} failed"));
                }
                let keep = old_size.min(size);
                if !intact(q, keep, seed) {
                    return Err(format!(
                        "realloc {old_p:#x}+{old_size} -> {q:#x}+{size} lost contents"
                    ));
                }
                self.live.swap_remove(i);
                self.ranges.remove(&old_p);
                self.add(q, size, 16)
            }
            Op::Usable { idx } if !self.live.is_empty() => {
                let b = &self.live[idx % self.live.len()];
                // SAFETY: a live block of ours.
                let u = unsafe { hak_malloc_usable_size(b.p as *mut c_void) };
                if u < b.size {
                    return Err(format!("usable size {u} < {}", b.size));
                }
                if !b.p.is_multiple_of(b.align) {
                    return Err(format!("{:#x} lost its {}-byte alignment", b.p, b.align));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Frees everything still live (checking it first).
    pub fn drain(&mut self) -> Result<(), String> {
        while !self.live.is_empty() {
            self.apply(Op::Free { idx: 0 })?;
        }
        Ok(())
    }
}

/// Runs `ops` against a fresh model, then frees what is left.
pub fn check(ops: &[Op]) -> Result<u64, String> {
    let mut m = Model::default();
    for (i, &op) in ops.iter().enumerate() {
        m.apply(op).map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    m.drain()?;
    Ok(m.ops)
}
