# Thin wrappers over cargo. `make profile` is the main job; `make test` is what CI runs.
CARGO ?= cargo
LIB   := target/preload/libhakmem.so
# gungraun's library (microbench/Cargo.toml) and its runner must be the same version.
GUNGRAUN_VERSION := 0.20.0
IAI_RESULTS  := target/iai.jsonl
IAI_BASELINE := microbench/iai-baseline.tsv

.PHONY: bench-scaling hardening sites-cost build preload test test-tools test-fast stress bench bench-report bench-programs peer-libs iai iai-runner iai-check iai-bless profile profile-tools miri fmt clippy clean

build:
	$(CARGO) build --release --workspace

# libhakmem.so for LD_PRELOAD (its own package, so no test binary exports malloc).
# VALGRIND=1: blocks announced to valgrind's memcheck (client requests).
preload:
	$(CARGO) build --profile preload -p hakmem-preload $(if $(VALGRIND),--features valgrind)
	@echo "built $(LIB)"

# Everything CI runs: unit, integration, stress (short), LD_PRELOAD programs, and the
# instruction-count gate.
test: test-tools preload
	$(CARGO) test --workspace --exclude hakmem-preload
	$(MAKE) iai-check

# What the tests run besides cargo: the programs put under LD_PRELOAD, a C compiler, and
# valgrind for the instruction-count gate. Installed with apt-get when missing (as root).
TEST_TOOLS := sqlite3:sqlite3 cc:gcc c++:g++ python3:python3 sort:coreutils git:git valgrind:valgrind redis-server:redis-server
# libc6-dbg: the C library's separate debug file, which `hakprof sites` reads (a test
# symbolizes a static libc function through it).
TEST_PKGS := libc6-dbg
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	for p in $(TEST_PKGS); do \
		dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
			|| { echo "could not install$$missing: install them and rerun"; exit 1; }; \
	fi

# The C-path peers (Debian's mimalloc, jemalloc and tcmalloc, preloaded by the C-path probes
# and the program benchmarks) and /usr/bin/time, installed with apt-get when missing.
PEER_PKGS := libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 time
peer-libs: test-tools
	@missing=""; for p in $(PEER_PKGS); do \
		dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
			|| { echo "could not install$$missing: install them and rerun"; exit 1; }; \
	fi

# The long stress: 10x the operations of the one in `make test`, under every front and mode.
stress:
	HAKMEM_STRESS_OPS=2000000 $(CARGO) test --release --test stress -- --test-threads=1 four_threads
	$(CARGO) test --release --test stress -- stress_under_every_front_and_mode thread_churn
	$(CARGO) test --release --test fuzz_model --test rss

# Unit tests only: seconds, for the edit-compile loop.
test-fast:
	$(CARGO) test --workspace --exclude hakmem-preload --lib

# The criterion benches: every probe and every workload with all six allocators in each
# group; HTML report in target/criterion/report/index.html. Then the C-path probes under
# LD_PRELOAD for hakmem, glibc, mimalloc, jemalloc and tcmalloc (target/cabi-time.json).
bench: preload peer-libs
	$(CARGO) bench -p microbench --bench alloc
	$(CARGO) run -q --release -p microbench --bin cabi -- time

# The program benchmarks (microbench/c/programs/ and a start-up row) under each allocator,
# 3 rounds, allocators alternated (target/bench-programs.json). A few minutes.
bench-programs: preload peer-libs
	$(CARGO) run -q --release -p microbench --bin bench-programs

# Thread scaling (microbench/c/scaling/) at 1, 2, 4, ... threads up to max(16, 2 x cores)
# under each allocator, 3 rounds alternated, medians (target/bench-scaling.json and
# target/scaling-*.svg). A few minutes on 2 cores.
bench-scaling: preload peer-libs
	$(CARGO) run -q --release -p microbench --bin bench-scaling

# How each allocator ends the heap-bug cases of microbench/c/hardening.c (README table).
hardening: preload peer-libs
	@$(CARGO) run -q --release -p microbench --bin hardening

bench-report:
	@$(CARGO) build -q --release -p microbench --bin cabi
	@$(CARGO) build -q --release -p microbench --bin peak-rss
	@$(CARGO) run -q --release -p microbench --bin bench-report

iai-runner:
	@if ! gungraun-runner --version 2>/dev/null | grep -q "$(GUNGRAUN_VERSION)"; then \
		echo "installing gungraun-runner $(GUNGRAUN_VERSION)"; \
		$(CARGO) install gungraun-runner --version $(GUNGRAUN_VERSION) --locked; \
	fi

# Instruction counts (and simulated cache misses) of every probe, under callgrind; then the
# C-path probes (hakmem and, with `make iai`, every peer) appended to the same results.
CABI_COUNT = $(CARGO) run -q --release -p microbench --bin cabi -- count
iai: iai-runner preload peer-libs
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	$(CABI_COUNT) --all >> $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- show $(IAI_BASELINE) $(IAI_RESULTS)

# Fails when a probe's count rises more than 2 % above the committed baseline.
iai-check: iai-runner preload
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	$(CABI_COUNT) >> $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- check $(IAI_BASELINE) $(IAI_RESULTS)

# Rewrites the baseline on purpose (commit the file).
iai-bless: iai-runner preload
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	$(CABI_COUNT) >> $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- bless $(IAI_BASELINE) $(IAI_RESULTS)

# The main job: counters, flamegraphs, ablation, syscalls and the report, written to
# flamegraphs/ (index.html, report.md, *.svg). QUICK=1 runs a smaller set (about a minute).
# hakprof is built with frame pointers (for perf's stacks) in its own target folder, so
# the other builds keep their flags and their caches. The C-path rows need libhakmem.so and
# the peers' libraries (hakprof says which are missing and goes on without them).
PROFILE_TARGET := target/profile
# The sites mode's cost (README): instructions under callgrind and time, without and with it.
sites-cost: preload test-tools
	sh scripts/sites-cost.sh

profile: profile-tools preload
	@$(MAKE) -s peer-libs || echo "hakprof goes on without the missing peers"
	RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=$(PROFILE_TARGET) $(CARGO) build --release -p profiling
	$(PROFILE_TARGET)/release/hakprof report $(if $(QUICK),--quick)

# perf and valgrind from the system package manager when missing (Debian/Ubuntu).
profile-tools:
	@missing=""; \
	command -v perf >/dev/null 2>&1 && perf --version >/dev/null 2>&1 || missing="$$missing linux-perf"; \
	command -v valgrind >/dev/null 2>&1 || missing="$$missing valgrind"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || echo "could not install$$missing; hakprof will say what is missing"; \
		else echo "no apt-get: install$$missing yourself; hakprof will say what is missing"; fi; \
	fi

# The pure-logic modules (size classes, header, sites, learners, lifecycle, config) and the
# parts of the pool that need no mmap (page records and free lists with remote frees from
# other threads, page queues, the spin lock) under Miri.
miri:
	$(CARGO) +nightly miri test -p hakmem --lib -- size_class header site diag learn::math learn::rng learn::p2 learn::ucb1 learn::elo learn::lifecycle learn::sites learn::stacks config pool::list pool::page lock::tests

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
