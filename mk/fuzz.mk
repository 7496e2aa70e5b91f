# Fuzzing with cargo-fuzz (libFuzzer). `make fuzz` runs each target for FUZZ_SECONDS (default 60), starting
# from the committed seeds in fuzz/corpus_seeds/<target>/ plus whatever earlier runs kept in
# fuzz/corpus/<target>/ (not committed); a crash stops the run and is saved under fuzz/artifacts/<target>/.
# Reproduce one with `cargo +nightly fuzz run <target> <file>`, then turn it into a unit test beside the code.
# cargo-fuzz needs a nightly compiler: +nightly when rustup has one, else RUSTC_BOOTSTRAP=1 on stable.
# Other mk files may add targets with `FUZZ_TARGETS += name`; `make fuzz FUZZ_TARGETS=name` runs one.
# FUZZ_FLAGS_<target> adds libFuzzer flags for one target.
FUZZ_TARGETS += frame_decoder handshake chat_json
FUZZ_TARGETS += proxy_protocol forwarded resp_link resp_deep cluster_wire history_entry web_path redis_url
FUZZ_SECONDS ?= 60
FUZZ_FLAGS ?= -timeout=10 -rss_limit_mb=2048
# Server bytes up to 256 KiB: room for replies nested past 31 000 levels (`*1\r\n` each) and for the
# link's budgets; resp_deep builds its nesting itself and needs no more than the default.
FUZZ_FLAGS_resp_link ?= -max_len=262144
FUZZ_CARGO := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo '$(CARGO) +nightly' || echo 'RUSTC_BOOTSTRAP=1 $(CARGO)')

.PHONY: fuzz fuzz-build fuzz-seeds fuzz-tool

fuzz-tool:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz

fuzz-build: fuzz-tool
	$(FUZZ_CARGO) fuzz build

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  seeds=; [ -d fuzz/corpus_seeds/$$t ] && seeds=fuzz/corpus_seeds/$$t; \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  eval "extra=\$$FUZZ_FLAGS_$$t"; \
	  $(FUZZ_CARGO) fuzz run $$t fuzz/corpus/$$t $$seeds -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) $$extra; \
	done

# The per-target flags, for the loops above.
export $(filter FUZZ_FLAGS_%,$(.VARIABLES))

# Replays the committed seeds (and the local corpus) through every target once, without fuzzing.
fuzz-seeds: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  seeds=; [ -d fuzz/corpus_seeds/$$t ] && seeds=fuzz/corpus_seeds/$$t; \
	  eval "extra=\$$FUZZ_FLAGS_$$t"; \
	  $(FUZZ_CARGO) fuzz run $$t fuzz/corpus/$$t $$seeds -- -runs=0 $$extra; \
	done
