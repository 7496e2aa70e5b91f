#!/usr/bin/env bash
# The files `make deb` packages that are made from the built binaries, into target/deb-assets: the
# service unit pointing at /usr/bin/wschat and the packaged configuration, the configuration file (every key
# of `wschat --print-config`, commented out: the package changes nothing until the operator says so), the man
# pages and the shell completions of the three binaries (generated from their command lines).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN_DIR:-target/release}
out=target/deb-assets
rm -rf "$out" && mkdir -p "$out/man" "$out/completions"

sed 's|^ExecStart=/usr/local/bin/wschat$|ExecStart=/usr/bin/wschat --config /etc/wschat/wschat.toml|; s|^# Install: .*|# Installed by the wschat package; flags go in /etc/wschat/wschat.toml.|; /^#          systemctl daemon-reload/d' \
  dist/wschat.service >"$out/wschat.service"
grep -q '^ExecStart=/usr/bin/wschat --config /etc/wschat/wschat.toml$' "$out/wschat.service"

{
  echo "# /etc/wschat/wschat.toml: wschat's configuration (read with --config; see wschat(1))."
  echo "# Every key is a flag of \`wschat --help\` without its dashes; every key is also an environment"
  echo "# variable WSCHAT_<KEY> (WSCHAT_MAX_CONNECTIONS). The command line wins over the environment, which"
  echo "# wins over this file. \`systemctl reload wschat\` (SIGHUP) reads it again: the origins, connection and"
  echo "# rate limits, output limits and the log level change at once; other keys need a restart."
  echo "# Below, every key with its default, commented out. The ports are systemd's (wschat-*.socket)."
  "$bin/wschat" --print-config | sed '1d' | sed -E 's/^([a-z][a-z-]* = )/# \1/'
} >"$out/wschat.toml"

for b in wschat wschat-bench wschat-dump; do
  "$bin/$b" --man-page | gzip -9n >"$out/man/$b.1.gz"
  "$bin/$b" --completions bash >"$out/completions/$b.bash"
  "$bin/$b" --completions zsh >"$out/completions/_$b"
  "$bin/$b" --completions fish >"$out/completions/$b.fish"
done
