#!/usr/bin/env bash
# Gets tree-sitter's C runtime and the grammars of the syntax chunker
# (src/chunk/syntax.c) from the npm registry, each tarball pinned by version
# and sha256, into build/grammars (or $CEMBED_GRAMMARS):
#   runtime/{include,src}     the runtime that npm's `tree-sitter` carries
#                             (vendor/tree-sitter/lib; grammar ABI 13..15)
#   lang/NAME/src/parser.c    a grammar's generated parser (+ scanner.c; NAME is
#                             the C name: tree_sitter_NAME())
#   VERSIONS                  what is there, one "npm-package version sha256" a line
# The Makefile builds what it finds there; without it cembed builds with the
# line chunker only. Idempotent: a package already unpacked at its pinned
# version is skipped. Needs curl, tar, sha256sum.
#
# usage: scripts/fetch-grammars.sh [--only LANG,...]   (default: all below)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${CEMBED_GRAMMARS:-$root/build/grammars}
registry=${NPM_REGISTRY:-https://registry.npmjs.org}

# npm package, version, sha256 of the tarball, then what to take from it:
#   runtime | LANG:SUBDIR (the folder holding src/parser.c) ...
PINS=(
  "tree-sitter 0.25.1 07aeba8dd71630e7e72b2d4ca3bd2680c3471824100cc5ebff44e78a6ed0b6d3 runtime"
  "tree-sitter-python 0.25.0 63b76b3fa8181fd79eaad4abcdb21e2babcb504dbfc7710a89934fa456d26096 python:."
  "tree-sitter-c 0.24.1 8e9ecd7687665d2fa1b3c07fbd1f4380b7d285850d6954629e2156e1b757451e c:."
  "tree-sitter-javascript 0.25.0 6214ce23d03aba525ba8edd6ca7caf365c969f2c2dbfc353e376ca54507ffb92 javascript:."
  "tree-sitter-go 0.25.0 f7265544d6b297797dc3675c02b76fb182c177ce29fda10ac1f36e9ab33fd90e go:."
  "tree-sitter-rust 0.24.0 4248da0b9ea40fec13ef010822e7b92a9d1ebdf74f6f2733539b1dbbb086c5bb rust:."
  "tree-sitter-java 0.23.5 6b6c1b62605f9d8bb80efd2ebe5951a87b182faafa3eeb67c460a667818551b6 java:."
  "tree-sitter-typescript 0.23.2 0fdf63c35930a75885145d75ee63cb879da2d49db9bfe454bd8e60b08ba778a1 typescript:typescript tsx:tsx"
  "tree-sitter-cpp 0.23.4 615d152f70e7a6bed8f15a93c3c0c264c40dc71c1b6a1445646fff9439e776bc cpp:."
  "tree-sitter-c-sharp 0.23.5 dde5d56fe441a7d64616462c8d741ab4af7874484de6aa74548ac5770c50c414 c_sharp:."
  "tree-sitter-ruby 0.23.1 1f0f0c100e31ddf650962ebb1f1fb8420bdbabccd49582f6e731ea7478db639d ruby:."
  "tree-sitter-bash 0.25.1 d4b2819508ea97cb8953fff7e304a610d443007bd395c8f03a15de9a8ae4a6f9 bash:."
  "tree-sitter-php 0.24.2 fdd22530d3845540ba74a1199d3f67204a608c99994bb423645d3f0cfdaead94 php:php"
)

only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only=",${2:?--only needs LANG,...},"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "fetch-grammars: unknown argument $1" >&2; exit 2 ;;
  esac
done

mkdir -p "$dest/lang"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$dest/VERSIONS"
changed=0
for pin in "${PINS[@]}"; do
  read -r pkg ver sha parts <<<"$pin"
  wanted=0
  for part in $parts; do
    name=${part%%:*}
    if [ "$name" = runtime ] || [ -z "$only" ] || [[ $only == *",$name,"* ]]; then wanted=1; fi
  done
  [ "$wanted" = 1 ] || continue
  if grep -qx "$pkg $ver $sha" "$dest/VERSIONS"; then continue; fi
  tgz="$tmp/$pkg-$ver.tgz"
  curl -fsSL --retry 3 -o "$tgz" "$registry/$pkg/-/$pkg-$ver.tgz"
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "fetch-grammars: $pkg-$ver.tgz sha256 is $got, expected $sha" >&2
    exit 1
  fi
  mkdir -p "$tmp/$pkg"
  tar -xzf "$tgz" -C "$tmp/$pkg"
  p="$tmp/$pkg/package"
  for part in $parts; do
    name=${part%%:*}
    sub=${part#*:}
    if [ "$name" = runtime ]; then
      rm -rf "$dest/runtime"
      mkdir -p "$dest/runtime"
      cp -r "$p/vendor/tree-sitter/lib/include" "$p/vendor/tree-sitter/lib/src" "$dest/runtime/"
      cp "$p/LICENSE" "$dest/runtime/" 2>/dev/null || true
    else
      rm -rf "$dest/lang/$name"
      mkdir -p "$dest/lang/$name"
      cp -r "$p/$sub/src" "$dest/lang/$name/"
      cp "$p/LICENSE" "$dest/lang/$name/" 2>/dev/null || true
      # typescript's and php's scanners include ../../common/scanner.h (each
      # package its own): it goes beside the scanner, the include follows
      if [ -f "$p/common/scanner.h" ] && [ -f "$dest/lang/$name/src/scanner.c" ]; then
        cp "$p/common/scanner.h" "$dest/lang/$name/src/common_scanner.h"
        sed -i 's|"\.\./\.\./common/scanner\.h"|"common_scanner.h"|' "$dest/lang/$name/src/scanner.c"
      fi
    fi
  done
  grep -v "^$pkg " "$dest/VERSIONS" >"$tmp/v" || true
  echo "$pkg $ver $sha" >>"$tmp/v"
  sort "$tmp/v" >"$dest/VERSIONS"
  changed=1
  echo "fetch-grammars: $pkg $ver"
done
# the Makefile rebuilds the language table when this changes
if [ "$changed" = 1 ] || [ ! -f "$dest/langs.stamp" ]; then
  ls "$dest/lang" >"$dest/langs.stamp" || true
fi
echo "fetch-grammars: $(tr '\n' ' ' <"$dest/langs.stamp")in $dest"
