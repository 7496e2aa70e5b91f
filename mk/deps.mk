# `make deps`: installs every Debian and npm package the tests need (listed in mk/deps.list) when missing —
# apt-get as root, otherwise the command to run is printed — and does nothing when all is there. Every test
# target depends on it, so `make test` on a fresh machine installs what it needs.
.PHONY: deps
deps:
	@mk/deps.sh

test-rust test-e2e: deps
