#!/usr/bin/env bash
# Raises the open-file limit for the many client sockets, then runs the benchmark coordinator.
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 20000 || true
echo "open file limit: $(ulimit -n)"
exec node_modules/.bin/bun bench/run.ts "$@"
