#!/usr/bin/env bash
# Whole-process timing of `headroom render` (every artifact, written to a temp dir) and
# `headroom check` for each example, with hyperfine. Usage: bash benches/render.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (bash .ci/install-validators)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for spec in examples/*/capacity.yaml; do
  name=$(basename "$(dirname "$spec")")
  hyperfine --shell=none --ignore-failure --warmup 5 --runs 50 --style basic --export-markdown "$out/$name.md" \
    "target/release/headroom render --force -o $out/$name $spec" \
    "target/release/headroom check $spec --format json" >/dev/null
  tail -n +3 "$out/$name.md"
done
