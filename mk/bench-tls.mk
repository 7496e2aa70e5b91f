# TLS benchmarks. `make bench-tls`: a plain daemon and a TLS daemon (--tls-cert/--tls-key, an ECDSA P-256
# certificate for 127.0.0.1 made with openssl) side by side in the same run, three runs each (saturate at 100
# clients on the doubling grid and bisected, a fanout at 200 k deliveries/s with the audit, full TLS handshakes/s,
# RSS per idle connection), into the TLS section of BENCHMARKS.md (benches/tls.py, raw JSON in
# target/bench-tls/results.json; BENCH_TLS_ARGS=--quick, --runs N or --no-pin).
.PHONY: bench-tls

BENCH_TLS_ARGS ?=

bench-tls: build
	python3 benches/tls.py --runs 3 --out BENCHMARKS.md $(BENCH_TLS_ARGS)
