# wschat — build, run, test. `make run` starts the daemon on its defaults; `make test` runs every test.
CARGO ?= cargo
RELEASE := target/release

.PHONY: all build run cluster-ha test test-rust test-e2e lint fmt clean

all: build

build:
	$(CARGO) build --release

run: build
	$(RELEASE)/wschat

# A master, a replica, three sentinels and two nodes with --cluster redis+sentinel://…, to try a failover
# (mk/cluster-ha.sh; Ctrl-C stops everything).
cluster-ha: build
	mk/cluster-ha.sh

# A test skipped for want of something prints `SKIP: <test>: <reason>` and appends it to WSCHAT_SKIP_LOG;
# `make test` lists them at the end (under CI=true a missing dependency fails the test instead).
export WSCHAT_SKIP_LOG ?= $(CURDIR)/target/skipped.txt

test:
	@mkdir -p $(dir $(WSCHAT_SKIP_LOG)) && rm -f $(WSCHAT_SKIP_LOG)
	@$(MAKE) --no-print-directory test-rust test-e2e; status=$$?; \
	if [ -s $(WSCHAT_SKIP_LOG) ]; then echo "== skipped tests: $$(wc -l <$(WSCHAT_SKIP_LOG))"; \
	  sed 's/^/  /' $(WSCHAT_SKIP_LOG); else echo "== no test skipped"; fi; exit $$status

# The conformance suite runs twice: in plain text (with everything else) and over TLS (`WSCHAT_TEST_TLS=1`:
# each daemon gets --tls-cert/--tls-key, each raw client speaks TLS), expecting the same outcomes.
# The tests run optimised code but skip the release profile's thin LTO and single codegen unit: linking ~50
# test binaries with LTO took 13 minutes here, without it 6 (`make build` alone keeps both for what ships).
# The browser test uses the binaries the Rust tests built.
test-rust test-e2e: export CARGO_PROFILE_RELEASE_LTO = false
test-rust test-e2e: export CARGO_PROFILE_RELEASE_CODEGEN_UNITS = 16
test-rust:
	$(CARGO) test --release --all-targets
	WSCHAT_TEST_TLS=1 $(CARGO) test --release --test conformance

# mk/check-layers.sh: no module names one above it (chat ↛ cluster, reactor; the seam ↛ what uses it).
lint:
	$(CARGO) fmt --all -- --check
	mk/check-layers.sh
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# Tool-specific targets live in their own files.
-include mk/*.mk
