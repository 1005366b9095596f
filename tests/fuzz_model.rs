//! The cargo-fuzz target's shadow model, driven by a seeded generator (no nightly needed):
//! random alloc / realloc / free / usable-size sequences, each op checked.

#[path = "../fuzz/model.rs"]
mod model;

mod common;

use model::Op;

fn ops(seed: u64, n: usize) -> Vec<Op> {
    let mut r = common::Rng::new(seed);
    (0..n)
        .map(|_| {
            let size = match r.below(100) {
                0..=69 => r.below(512) as usize,
                70..=96 => r.below(300_000) as usize,
                _ => r.below(4 << 20) as usize,
            };
            match r.below(10) {
                0..=3 => Op::Alloc {
                    size,
                    align_log: if r.below(5) == 0 {
                        r.below(21) as u8
                    } else {
                        0
                    },
                },
                4..=6 => Op::Free {
                    idx: r.next() as usize,
                },
                7 | 8 => Op::Realloc {
                    idx: r.next() as usize,
                    size,
                },
                _ => Op::Usable {
                    idx: r.next() as usize,
                },
            }
        })
        .collect()
}

#[test]
fn seeded_operation_sequences_match_the_shadow_model() {
    let mut total = 0;
    for seed in 1..=8u64 {
        total += model::check(&ops(seed, 25_000)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    assert!(total >= 200_000, "{total} operations checked");
}

#[test]
fn fuzzer_bytes_decode_to_operations_and_run() {
    let bytes: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let ops = model::decode(&bytes);
    assert_eq!(ops.len(), 1000);
    model::check(&ops).unwrap();
}
