//! Criterion benches: every probe, then every workload with all six allocators in the same
//! group (hakmem's three fronts, glibc, mimalloc, jemalloc), so each ratio comes from one
//! run. Each allocator is confirmed (`peers::confirm_served`) before it is measured.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use microbench::peers::{self, Peer};
use microbench::scenarios::{self, Scenario};
use microbench::{probes, workloads};
use std::alloc::Layout;
use std::time::Duration;

const SIZES: [usize; 7] = [16, 64, 256, 1024, 4096, 32768, 2 << 20];

fn size_label(size: usize) -> String {
    if size >= 1 << 20 {
        format!("{}MiB", size >> 20)
    } else {
        size.to_string()
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

fn probe_steps(c: &mut Criterion) {
    let mut g = c.benchmark_group("probe");
    g.throughput(Throughput::Elements(probes::OPS));
    for p in probes::STEPS {
        let mut run = (p.make)();
        g.bench_function(p.name, |b| b.iter(&mut run));
    }
    g.finish();
}

/// One group per workload, every allocator in it.
fn peer_group(
    c: &mut Criterion,
    group: &str,
    elements: u64,
    confirm: Layout,
    bench: impl FnMut(&Peer) -> Box<dyn FnMut()>,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(elements));
    every_peer(g, confirm, bench);
}

/// Each allocator, confirmed, in group `g`.
fn every_peer(
    mut g: BenchmarkGroup<'_, WallTime>,
    confirm: Layout,
    mut bench: impl FnMut(&Peer) -> Box<dyn FnMut()>,
) {
    for peer in peers::ALL {
        peers::confirm_served(&peer, confirm);
        let mut run = bench(&peer);
        g.bench_function(BenchmarkId::from_parameter(peer.name), |b| b.iter(&mut run));
    }
    g.finish();
}

fn pairs_and_batches(c: &mut Criterion) {
    for size in SIZES {
        let l = Layout::from_size_align(size, 8).unwrap();
        peer_group(c, &format!("pair/{}", size_label(size)), 1, l, |p| {
            let a = p.alloc;
            Box::new(move || workloads::pair(a, l))
        });
        peer_group(
            c,
            &format!("batch1000/{}", size_label(size)),
            1000,
            l,
            |p| {
                let a = p.alloc;
                let mut slots = vec![std::ptr::null_mut(); 1000];
                Box::new(move || workloads::batch(a, l, &mut slots))
            },
        );
    }
}

fn scenario_groups(c: &mut Criterion) {
    for s in Scenario::ALL {
        let (size, n) = s.shape();
        let confirm = Layout::from_size_align(size.max(64 << 10), 16).unwrap();
        peer_group(
            c,
            &format!("scenario/{}", s.name()),
            n as u64,
            confirm,
            |p| {
                let a = p.alloc;
                Box::new(move || {
                    std::hint::black_box(s.run(a));
                })
            },
        );
    }
}

/// Larson-style server simulation: ops per second at 1 and 2 threads.
pub const LARSON_ROUNDS: usize = 4;
pub const LARSON_OPS: usize = 5000;

fn larson_groups(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let total = (threads * LARSON_ROUNDS * LARSON_OPS) as u64;
        peer_group(
            c,
            &format!("larson/{threads}t"),
            total,
            Layout::from_size_align(100, 8).unwrap(),
            |p| {
                let a = p.alloc;
                Box::new(move || {
                    std::hint::black_box(scenarios::larson(
                        a,
                        threads,
                        LARSON_ROUNDS,
                        LARSON_OPS,
                        42,
                    ));
                })
            },
        );
    }
}

/// One thread allocates, another frees: every free is a remote free.
pub const PRODCONS_OPS: usize = 20_000;

fn prodcons_group(c: &mut Criterion) {
    peer_group(
        c,
        "prodcons",
        PRODCONS_OPS as u64,
        Layout::from_size_align(100, 8).unwrap(),
        |p| {
            let a = p.alloc;
            Box::new(move || {
                std::hint::black_box(scenarios::producer_consumer(a, PRODCONS_OPS, 7));
            })
        },
    );
}

/// Big blocks at scale: batches that come back every round, a churn of 5–25 MiB blocks,
/// realloc growth to 64 MiB. Each iteration takes milliseconds, so fewer samples.
fn big_groups(c: &mut Criterion) {
    let confirm = Layout::from_size_align(2 << 20, 16).unwrap();
    for (label, size, count) in workloads::BIG_BATCHES {
        let l = Layout::from_size_align(size, 16).unwrap();
        big_group(
            c,
            &format!("big/batch{label}"),
            count as u64,
            confirm,
            |p| {
                let a = p.alloc;
                let mut slots = vec![std::ptr::null_mut(); count];
                Box::new(move || workloads::big_batch(a, l, &mut slots))
            },
        );
    }
    big_group(c, "big/churn20x5-25MiB", 1, confirm, |p| {
        let mut churn = workloads::BigChurn::new(p.alloc);
        Box::new(move || churn.step())
    });
    big_group(c, "big/realloc1-64MiB", 1, confirm, |p| {
        let a = p.alloc;
        Box::new(move || workloads::big_realloc(a))
    });
}

/// A peer group whose iterations take milliseconds: fewer samples.
fn big_group(
    c: &mut Criterion,
    group: &str,
    elements: u64,
    confirm: Layout,
    bench: impl FnMut(&Peer) -> Box<dyn FnMut()>,
) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(elements))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    every_peer(g, confirm, bench);
}

criterion_group! {
    name = benches;
    config = config();
    targets = probe_steps, pairs_and_batches, scenario_groups, larson_groups, prodcons_group, big_groups
}
criterion_main!(benches);
