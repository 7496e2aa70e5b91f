# Cluster benchmarks. `make bench-cluster`: one plain node, one node with --cluster and two nodes sharing one
# Redis, side by side, three runs each (saturate, and a fanout at 100 k deliveries/s with the audit), into the
# Cluster section of BENCHMARKS.md (benches/cluster.py; BENCH_CLUSTER_ARGS=--quick or --no-write).
# `make cluster-netns` (root): Redis and two nodes in three network namespaces with a netem delay on every
# link, the audited fanout across both nodes (benches/cluster-netns.sh; DELAY_MS, RATE, SECS).
.PHONY: bench-cluster cluster-netns

BENCH_CLUSTER_ARGS ?=

bench-cluster: build
	python3 benches/cluster.py --runs 3 --out BENCHMARKS.md $(BENCH_CLUSTER_ARGS)

cluster-netns:
	@[ "$$(id -u)" = 0 ] || { echo "cluster-netns: needs root (network namespaces, veth pairs, tc netem): sudo make cluster-netns" >&2; exit 1; }
	$(MAKE) --no-print-directory build
	benches/cluster-netns.sh
