#!/usr/bin/env bash
# `make lint`: the layering of src/, read from the `crate::` paths of each file (in `use` lines and in code;
# comments do not count). A lower layer never names a higher one, so none of these may appear:
#  - src/chat/** names crate::cluster (the node hands the chat typed events; the chat never calls the node);
#  - src/app.rs, the seam, names crate::chat, crate::cluster, crate::reactor or crate::config (what stands
#    above it; it may take crate::shared_bytes, crate::metrics and crate::ws from below);
#  - src/chat/** names crate::reactor, crate::session, crate::outbox or crate::transport (the reactor's files);
#  - src/config.rs or src/metrics.rs names crate::cluster (each subsystem owns its flags and its figures).
# Prints each offending line as `file:line: text (rule)` and exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

# paths FILE: one `LINE MODULE` per crate-level module the file names: every `crate::module` in code, and
# each first-level member of a `crate::{…}` group, on one line or across several.
paths() {
  local n=0 depth=0 start=0 line code rest i c ident
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [[ $line =~ ^[[:space:]]*// ]] && continue
    code=${line%%[[:space:]]//*}
    rest=$code
    while [[ $rest =~ crate::([A-Za-z_][A-Za-z0-9_]*) ]]; do
      echo "$n ${BASH_REMATCH[1]}"
      rest=${rest#*"${BASH_REMATCH[0]}"}
    done
    # Inside a group, or at the start of one: walk the characters, naming each member at depth 1.
    rest=$code
    if [ "$depth" -eq 0 ]; then
      case $code in *'crate::{'*) rest=${code#*crate::\{} depth=1 start=1 ;; *) continue ;; esac
    fi
    i=0
    while [ "$i" -lt "${#rest}" ] && [ "$depth" -gt 0 ]; do
      c=${rest:i:1}
      if [ "$depth" -eq 1 ] && [ "$start" -eq 1 ] && [[ $c =~ [A-Za-z_] ]]; then
        ident=${rest:i}
        ident=${ident%%[!A-Za-z0-9_]*}
        echo "$n $ident"
        start=0
        i=$((i + ${#ident}))
        continue
      fi
      case $c in
        '{') depth=$((depth + 1)) ;;
        '}') depth=$((depth - 1)) ;;
        ',') [ "$depth" -eq 1 ] && start=1 ;;
      esac
      i=$((i + 1))
    done
    # A group that ended on this line may be followed by another on the same line; rare enough to leave.
  done <"$1"
}

status=0
# check RULE FORBIDDEN FILE...: reports every line of FILE that names a module matching FORBIDDEN (a regex).
check() {
  local rule=$1 forbidden=$2 file n module
  shift 2
  for file in "$@"; do
    [ -f "$file" ] || continue
    while read -r n module; do
      if [[ $module =~ ^($forbidden)$ ]]; then
        echo "$file:$n: $(sed -n "${n}s/^[[:space:]]*//p" "$file") ($rule)"
        status=1
      fi
    done < <(paths "$file" | sort -u -k1,1n -k2,2)
  done
}

chat=()
while IFS= read -r f; do chat+=("$f"); done < <(find src/chat -name '*.rs' | sort)

check "chat names no cluster" 'cluster' "${chat[@]}"
check "the seam names nothing above it" 'chat|cluster|reactor|config' src/app.rs
check "chat names no reactor file" 'reactor|session|outbox|transport' "${chat[@]}"
check "config and metrics name no cluster" 'cluster' src/config.rs src/metrics.rs

if [ "$status" -eq 0 ]; then echo "layers: ok"; fi
exit "$status"
