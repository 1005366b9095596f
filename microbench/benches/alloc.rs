//! malloc+free pairs and batches of 1000 through `GlobalAlloc`, every allocator in the
//! same group so each ratio comes from one run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use microbench::{peers, workloads};
use std::alloc::Layout;

const SIZES: [usize; 4] = [16, 64, 256, 4096];

fn pairs(c: &mut Criterion) {
    for size in SIZES {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let mut g = c.benchmark_group(format!("pair/{size}"));
        g.throughput(Throughput::Elements(1));
        for peer in peers::all() {
            peers::confirm_served(&peer, layout);
            g.bench_function(BenchmarkId::from_parameter(peer.name), |b| {
                b.iter(|| workloads::pair(peer.alloc, layout))
            });
        }
        g.finish();
    }
}

fn batches(c: &mut Criterion) {
    let mut slots = vec![std::ptr::null_mut(); 1000];
    for size in SIZES {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let mut g = c.benchmark_group(format!("batch1000/{size}"));
        g.throughput(Throughput::Elements(1000));
        for peer in peers::all() {
            peers::confirm_served(&peer, layout);
            g.bench_function(BenchmarkId::from_parameter(peer.name), |b| {
                b.iter(|| workloads::batch(peer.alloc, layout, &mut slots))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, pairs, batches);
criterion_main!(benches);
