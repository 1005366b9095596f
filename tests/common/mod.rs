//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod preload;

/// A small, seeded generator (xorshift64*), so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Sizes from 1 B to 4 MiB, skewed small the way real programs are: most under 1 KiB,
    /// some up to 64 KiB, a few big blocks (up to 4 MiB).
    pub fn size(&mut self) -> usize {
        match self.below(1000) {
            0..=799 => 1 + self.below(1024) as usize,
            800..=979 => 1 + self.below(64 * 1024) as usize,
            _ => 1 + self.below(4 << 20) as usize,
        }
    }
    pub fn align(&mut self) -> usize {
        match self.below(20) {
            0 => 1 << (5 + self.below(16)), // 32 B .. 1 MiB
            1..=3 => 8,
            _ => 16,
        }
    }
}

/// Fills `len` bytes at `p` with a pattern derived from `seed`.
///
/// # Safety
/// `p` must be valid for `len` writes.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u8) {
    unsafe { core::ptr::write_bytes(p, seed, len) };
    if len >= 8 {
        // A word that differs per block, so swapped blocks are caught too.
        unsafe { (p as *mut [u8; 8]).write_unaligned((p as u64).to_le_bytes()) };
    }
}

/// Checks the first `len` bytes of a block that `fill` filled with `(full_len, seed)`,
/// when it was at address `orig` (it may have moved since, by `realloc`).
///
/// # Safety
/// `p` must be valid for `len` reads.
pub unsafe fn check(p: *const u8, len: usize, full_len: usize, seed: u8, orig: u64) -> bool {
    let s = unsafe { core::slice::from_raw_parts(p, len) };
    let head = if full_len >= 8 { 8.min(len) } else { 0 };
    s[..head] == orig.to_le_bytes()[..head] && s[head..].iter().all(|&b| b == seed)
}

/// Runs one test of this test binary again in a child process (the allocator's
/// configuration is read once per process, and aborting cases must not take the harness
/// down): `test` by exact name, with `case_var = case` and `env` set. Returns its output.
pub fn run_test_in_child(
    test: &str,
    case_var: &str,
    case: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(case_var, case)
        .envs(env.iter().copied())
        .output()
        .expect("re-run this test binary")
}
