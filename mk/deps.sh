#!/usr/bin/env bash
# `make deps`: installs what the tests need (mk/deps.list) when it is missing, and does nothing otherwise.
#  - Debian packages: as root, one `apt-get update` and one `apt-get install` of everything missing; as
#    another user, prints the one command to run and exits 1.
#  - npm packages: `npm ci` in each npm-ci directory whose node_modules/.deps-stamp (a copy of the
#    package-lock.json it was installed from) differs from its package-lock.json.
#  - Cargo tools (`cargo-install:CRATE@VERSION`): `cargo install --locked` when the command is missing.
# With everything present it costs a `command -v` per tool and a `cmp` per npm directory.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH=$PATH:/usr/sbin:/sbin

pkgs=()     # Debian packages to install
missing=()  # what is missing, for the messages
npm_dirs=() # directories that need `npm ci`
crates=()   # cargo tools to install
while read -r what rest; do
  rest=${rest%%#*}
  case $what in '' | '#'*) continue ;; esac
  if [ "$what" = npm-ci ]; then
    for dir in $rest; do
      cmp -s "$dir/package-lock.json" "$dir/node_modules/.deps-stamp" || npm_dirs+=("$dir")
    done
    continue
  fi
  case $what in
    /*) [ -e "$what" ] && continue ;;
    *) command -v "$what" >/dev/null 2>&1 && continue ;;
  esac
  read -r -a need <<<"$rest"
  if [[ ${need[0]} == cargo-install:* ]]; then
    crates+=("${need[0]#cargo-install:}")
    continue
  fi
  missing+=("$what (package ${need[*]})")
  pkgs+=("${need[@]}")
done <mk/deps.list

if [ ${#pkgs[@]} -gt 0 ]; then
  (IFS=,; echo "make deps: missing:${missing[*]/#/ }" >&2)
  install="apt-get install -y -q --no-install-recommends ${pkgs[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "make deps: installing Debian packages needs root; run this once, then make test again:" >&2
    if command -v sudo >/dev/null 2>&1; then
      echo "    sudo apt-get update && sudo $install" >&2
    else
      echo "    su -c 'apt-get update && $install'" >&2
    fi
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "make deps: no apt-get here: install the Debian packages ${pkgs[*]} (or their equivalents), then make test again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "make deps: apt-get update && $install" >&2
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends ${pkgs[*]}
fi

for crate in ${crates[@]+"${crates[@]}"}; do
  echo "make deps: cargo install --locked $crate" >&2
  cargo install --locked --quiet "$crate"
done

for dir in ${npm_dirs[@]+"${npm_dirs[@]}"}; do
  echo "make deps: npm ci in $dir ($dir/node_modules is missing or does not match its package-lock.json)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --silent)
  cp "$dir/package-lock.json" "$dir/node_modules/.deps-stamp"
done
