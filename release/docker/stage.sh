#!/bin/sh
# Lays out the Docker build context for release/docker/Dockerfile: dist/docker/linux/<arch>/ (Docker's
# TARGETPLATFORM naming) with anycable-ts from the release binaries dist/anycable-ts-linux-{x64,arm64}
# and anycable-go, a symlink to it.
# Usage: sh release/docker/stage.sh [dist-dir]   (links when it can, copies otherwise)
set -eu
dist=${1:-$(dirname "$0")/../../dist}
staged=0
for pair in amd64:x64 arm64:arm64; do
  platform=${pair%%:*}
  asset="$dist/anycable-ts-linux-${pair#*:}"
  [ -f "$asset" ] || continue
  dir="$dist/docker/linux/$platform"
  mkdir -p "$dir"
  rm -f "$dir/anycable-ts"
  ln "$asset" "$dir/anycable-ts" 2>/dev/null || cp "$asset" "$dir/anycable-ts"
  ln -sfn anycable-ts "$dir/anycable-go"
  echo "staged linux/$platform/anycable-ts"
  staged=$((staged + 1))
done
[ "$staged" -gt 0 ] || {
  echo "stage.sh: no dist/anycable-ts-linux-* binaries in $dist: run npm run build first" >&2
  exit 1
}
