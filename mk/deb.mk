# `make deb`: a Debian package built with cargo-deb (Cargo.toml [package.metadata.deb]) from the release
# binaries: /usr/bin/wschat, wschat-bench, wschat-dump; the systemd units; a commented /etc/wschat/wschat.toml
# (a conffile); man pages and completions generated from the command lines (mk/deb-assets.sh). The .deb lands
# in target/debian/. cargo-deb: `cargo install --locked cargo-deb` (`make deps` does it).
.PHONY: deb deb-package static

deb: build deb-package

# The package from binaries already built (tests/package.rs calls it after `cargo test --release`).
deb-package:
	mk/deb-assets.sh
	$(CARGO) deb --no-build --strip --output target/debian/

# `make static`: one wschat binary with no dynamic dependency (glibc linked statically, not position-independent:
# no dynamic section at all), in
# target/static/; `ldd target/static/wschat` says "not a dynamic executable".
static:
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" $(CARGO) build --release --no-default-features --bin wschat \
	  --target x86_64-unknown-linux-gnu --target-dir target/static-build
	mkdir -p target/static && cp target/static-build/x86_64-unknown-linux-gnu/release/wschat target/static/wschat
	@file target/static/wschat 2>/dev/null || true
