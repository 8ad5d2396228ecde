#!/bin/sh
# Runs llama.cpp as a second oracle over every model directory of a golden
# tree (tests/golden/arch/<name>/ with config.json, model.safetensors and
# golden-torch.json) and writes <OUT_DIR>/<name>/golden-llamacpp.json next to
# nothing else.  One summary line per model (min cosine vs the torch golden);
# architectures this llama.cpp lacks print SKIP and do not fail the run.
#
# usage: run_all.sh [GOLDEN_DIR] [OUT_DIR]
#   GOLDEN_DIR  default tests/golden/arch
#   OUT_DIR     default GOLDEN_DIR
# environment: LLAMA_SRC (default /work/llama.cpp-src: gguf-py, COMMIT),
#   LLAMA_BUILD (default /work/llama.cpp-build: bin/embed_ids), WORK (scratch,
#   default /tmp/llamacpp-oracle), ONLY (space-separated model names to run;
#   default all).  Build first with build.sh.
# Exit status: 0 when every supported model met the bar, 1 otherwise.
set -u
here=$(cd "$(dirname "$0")" && pwd)
golden=${1:-tests/golden/arch}
out=${2:-$golden}
src=${LLAMA_SRC:-/work/llama.cpp-src}
embed=${LLAMA_BUILD:-/work/llama.cpp-build}/bin/embed_ids
work=${WORK:-/tmp/llamacpp-oracle}
commit=$(cat "$src/COMMIT" 2>/dev/null || echo unknown)
LLAMA_ORIGIN=$(cat "$src/ORIGIN" 2>/dev/null || echo unknown)
export LLAMA_ORIGIN
export PYTHONPATH="$src/gguf-py${PYTHONPATH:+:$PYTHONPATH}"
py=${PYTHON:-/usr/bin/python3}

[ -x "$embed" ] || { echo "no $embed: run build.sh first" >&2; exit 2; }
echo "llama.cpp $commit ($LLAMA_ORIGIN)"
status=0
for dir in "$golden"/*/; do
	name=$(basename "$dir")
	[ -f "$dir/config.json" ] && [ -f "$dir/golden-torch.json" ] || continue
	case " ${ONLY:-$name} " in *" $name "*) ;; *) continue ;; esac
	"$py" "$here/run_model.py" "$dir" "$out/$name/golden-llamacpp.json" \
		"$work" "$embed" "$commit"
	case $? in
	0|3) ;;
	*) status=1 ;;
	esac
done
exit $status
