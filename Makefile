# Thin wrappers over cargo. `make profile` is the main job; `make test` is what CI runs.
CARGO ?= cargo
LIB   := target/release/libhakmem.so
# gungraun's library (microbench/Cargo.toml) and its runner must be the same version.
GUNGRAUN_VERSION := 0.20.0
IAI_RESULTS  := target/iai.jsonl
IAI_BASELINE := microbench/iai-baseline.tsv

.PHONY: build preload test test-fast stress bench bench-report iai iai-runner iai-check iai-bless profile miri fmt clippy clean

build:
	$(CARGO) build --release --workspace

# libhakmem.so for LD_PRELOAD (its own package, so no test binary exports malloc).
preload:
	$(CARGO) build --release -p hakmem-preload
	@echo "built $(LIB)"

# Everything CI runs: unit, integration, stress (short), LD_PRELOAD programs, and the
# instruction-count gate.
test: preload
	$(CARGO) test --workspace --exclude hakmem-preload
	$(MAKE) iai-check

# Unit tests only: seconds, for the edit-compile loop.
test-fast:
	$(CARGO) test --workspace --exclude hakmem-preload --lib

# The criterion benches: every probe and every workload with all six allocators in each
# group; HTML report in target/criterion/report/index.html.
bench:
	$(CARGO) bench -p microbench --bench alloc

bench-report:
	@$(CARGO) run -q --release -p microbench --bin bench-report

iai-runner:
	@if ! gungraun-runner --version 2>/dev/null | grep -q "$(GUNGRAUN_VERSION)"; then \
		echo "installing gungraun-runner $(GUNGRAUN_VERSION)"; \
		$(CARGO) install gungraun-runner --version $(GUNGRAUN_VERSION) --locked; \
	fi

# Instruction counts (and simulated cache misses) of every probe, under callgrind.
iai: iai-runner
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- show $(IAI_BASELINE) $(IAI_RESULTS)

# Fails when a probe's count rises more than 2 % above the committed baseline.
iai-check: iai-runner
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- check $(IAI_BASELINE) $(IAI_RESULTS)

# Rewrites the baseline on purpose (commit the file).
iai-bless: iai-runner
	$(CARGO) bench -p microbench --bench iai -- --output-format=json > $(IAI_RESULTS)
	@$(CARGO) run -q --release -p microbench --bin iai-gate -- bless $(IAI_BASELINE) $(IAI_RESULTS)

profile: build
	$(CARGO) run --release -p profiling --bin hakprof

# The pure-logic modules (size classes, header, sites, learners, lifecycle) under Miri.
miri:
	$(CARGO) +nightly miri test -p hakmem --lib -- size_class header site diag learn::rng learn::p2 learn::ucb1 learn::elo learn::lifecycle config

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
