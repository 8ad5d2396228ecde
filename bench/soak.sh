#!/usr/bin/env bash
# Soak test of `cembed serve`: 30 minutes of mixed traffic (sizes, streaming,
# disconnects, cache hits, bad input, idle sockets), RSS each minute; fails
# if after the 5-minute warm-up RSS grows by more than 5%. See bench/soak.py.
#
# usage: bench/soak.sh [CEMBED] [MODEL] [MINUTES]
set -euo pipefail
cembed=${1:-build/cembed}
model=${2:-${XDG_DATA_HOME:-$HOME/.local/share}/cembed/models/all-MiniLM-L6-v2}
minutes=${3:-30}
exec python3 "$(dirname "$0")/soak.py" "$cembed" "$model" --minutes "$minutes" --warmup "$(( minutes < 15 ? minutes / 3 : 5 ))"
