#!/usr/bin/env bash
# Installs the oracle npm packages (pinned by package-lock.json) into
# tests/oracle/node_modules. Idempotent; skips npm when the lock is unchanged.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
stamp=node_modules/.cembed-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
echo "$want" > "$stamp"
