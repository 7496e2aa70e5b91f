# wschat — build, run, test. `make run` starts the daemon on its defaults; `make test` runs every test.
CARGO ?= cargo
RELEASE := target/release

.PHONY: all build run test test-rust test-e2e lint fmt clean

all: build

build:
	$(CARGO) build --release

run: build
	$(RELEASE)/wschat

test: test-rust test-e2e

test-rust:
	$(CARGO) test --release --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean

# Tool-specific targets live in their own files.
-include mk/*.mk
