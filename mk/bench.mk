# Benchmarks. `make bench`: criterion micro-benchmarks. `make bench-load`: the wschat-bench scenarios against
# wschat, one run each, printed. `make bench-compare`: the same scenarios against wschat (chat protocol) and the
# bench-only peers (raw protocol), server on core 0 and client on core 1, three runs each, into BENCHMARKS.md.
# `make bench-cost`: syscalls per delivery and a profile of wschat (benches/cost.sh). `make bench-efficiency`: CPU
# per delivery at equal load against the C floor and for a cluster (benches/efficiency.py).
# BENCH_ARGS passes options to benches/compare.py (e.g. BENCH_ARGS=--quick).
.PHONY: bench bench-load bench-compare bench-peers

BENCH_ARGS ?=

bench:
	$(CARGO) bench --bench codec --bench alloc

bench-load: build
	python3 benches/compare.py --servers wschat --runs 1 --no-write $(BENCH_ARGS)

bench-compare: build bench-peers
	python3 benches/compare.py --runs 3 --out BENCHMARKS.md $(BENCH_ARGS)

bench-peers:
	cd benches/peers/tokio-tungstenite && $(CARGO) build --release
	cd benches/peers/node-ws && npm ci --no-audit --no-fund --silent
	$(MAKE) -C benches/peers/c-floor

# Syscalls per delivery and a profile of wschat under a bounded fanout (perf, or strace as a fallback).
.PHONY: bench-cost
bench-cost: build
	benches/cost.sh

# The kernel floor: what one small write() to a loopback TCP socket costs on this machine (benches/probes).
.PHONY: bench-write-cost
bench-write-cost:
	$(MAKE) -C benches/probes write_cost
	benches/probes/write_cost

# CPU per delivery at equal offered load: wschat (defaults and --coalesce-us) beside the C floor at 100 k, 200 k
# and 1 M deliveries/s, and one node beside a two-node cluster + Redis, 3 runs, into BENCHMARKS.md
# (benches/efficiency.py; EFFICIENCY_ARGS=--no-write prints instead).
.PHONY: bench-efficiency
EFFICIENCY_ARGS ?=
bench-efficiency: build
	$(MAKE) -C benches/peers/c-floor
	python3 benches/efficiency.py --runs 3 $(EFFICIENCY_ARGS)
