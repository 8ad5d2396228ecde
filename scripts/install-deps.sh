#!/usr/bin/env bash
# Installs every Debian package that cembed's build, tests and benchmarks need.
# Idempotent: packages already present are skipped, and apt-get update runs only
# when something is missing. Uses sudo when not run as root.
set -euo pipefail

PKGS=(
  build-essential pkg-config make gcc clang libclang-rt-14-dev
  libdnnl-dev libopenblas-dev libjansson-dev libutf8proc-dev libmicrohttpd-dev libssl-dev libsqlite3-dev libcurl4-openssl-dev
  git sqlite3 libhiredis-dev redis-server
  ca-certificates curl python3
)
# Node.js runs the test oracles. A machine may carry a Node.js build that bundles
# npm (and conflicts with Debian's npm package); take Debian's pair only when absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
# Benchmark peers (bench/): PyTorch, numpy, /usr/bin/time, jemalloc.
if [ "${CEMBED_BENCH_DEPS:-0}" = 1 ]; then
  PKGS+=(python3-torch python3-numpy time libjemalloc2)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# tree-sitter's runtime and grammars (npm tarballs, pinned) for the syntax
# chunker; without them (no network, CEMBED_NO_GRAMMARS=1) cembed builds with
# the line chunker only
grammars() {
  if [ "${CEMBED_NO_GRAMMARS:-0}" = 1 ]; then return 0; fi
  "$(dirname "$0")/fetch-grammars.sh" || echo "install-deps: no grammars fetched: the build has the line chunker only" >&2
}

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all packages present"
  grammars
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
grammars
