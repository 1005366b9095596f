//! gungraun benches: instruction counts (and simulated cache misses) of every probe, the
//! same probes the criterion benches time. `make iai` runs them; `make iai-check` (part of
//! `make test`) compares the counts with `microbench/iai-baseline.tsv`.
//!
//! Cache simulation uses explicit sizes: this VM reports a fake L3.

use gungraun::{
    library_benchmark, library_benchmark_group, main, Callgrind, LibraryBenchmarkConfig,
};
use microbench::probes::{self, Run};

/// Sets a probe up (not measured) and hands its run to the measured function.
fn setup(name: &str) -> Run {
    let probe = probes::by_name(name).unwrap_or_else(|| panic!("no probe {name}"));
    let mut run = (probe.make)();
    run(); // warm: first-use set-up (heaps, pages, tables) stays out of the count
    run
}

#[library_benchmark(setup = setup)]
#[bench::site_hash("site_hash")]
#[bench::learner_decide("learner_decide")]
#[bench::bigcache_lookup_hit("bigcache_lookup_hit")]
#[bench::bigcache_lookup_miss("bigcache_lookup_miss")]
#[bench::elo_select("elo_select")]
#[bench::ucb1_select("ucb1_select")]
#[bench::header_write("header_write")]
#[bench::header_verify("header_verify")]
#[bench::freelist_pop("freelist_pop")]
#[bench::freelist_push("freelist_push")]
#[bench::reuse_path("reuse_path")]
#[bench::pool_path("pool_path")]
#[bench::pair64_hakmem("pair64/hakmem")]
#[bench::pair64_hakmem_checked("pair64/hakmem-checked")]
#[bench::batch64_hakmem("batch64/hakmem")]
#[bench::pair64_hakmem_reuse("pair64/hakmem-reuse")]
#[bench::batch64_hakmem_reuse("batch64/hakmem-reuse")]
#[bench::pair64_hakmem_pool("pair64/hakmem-pool")]
#[bench::batch64_hakmem_pool("batch64/hakmem-pool")]
#[bench::pair64_system("pair64/system")]
#[bench::batch64_system("batch64/system")]
#[bench::pair64_mimalloc("pair64/mimalloc")]
#[bench::batch64_mimalloc("batch64/mimalloc")]
#[bench::pair64_jemalloc("pair64/jemalloc")]
#[bench::batch64_jemalloc("batch64/jemalloc")]
fn probe(mut run: Run) {
    run();
}

library_benchmark_group!(name = all_probes; benchmarks = probe);

main!(
    config = LibraryBenchmarkConfig::default().tool(Callgrind::with_args([
        "--I1=32768,8,64",
        "--D1=32768,8,64",
        "--LL=33554432,16,64",
    ]));
    library_benchmark_groups = all_probes
);
