# Thin wrappers over cargo. `make profile` is the main job; `make test` is what CI runs.
CARGO ?= cargo
LIB   := target/release/libhakmem.so

.PHONY: build preload test stress bench iai profile miri fmt clippy clean

build:
	$(CARGO) build --release --workspace

# libhakmem.so for LD_PRELOAD (its own package, so no test binary exports malloc).
preload:
	$(CARGO) build --release -p hakmem-preload
	@echo "built $(LIB)"

test: preload
	$(CARGO) test --workspace --exclude hakmem-preload

# The criterion benches: every allocator in each group, HTML report in target/criterion.
bench:
	$(CARGO) bench -p microbench --bench alloc

iai:
	@echo "make iai: instruction-count benches arrive with the micro-benchmark issue" >&2; exit 2

profile: build
	$(CARGO) run --release -p profiling --bin hakprof

# The pure-logic modules (size classes, header, sites, diagnostics) under Miri.
miri:
	$(CARGO) +nightly miri test -p hakmem --lib -- size_class header site diag

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
