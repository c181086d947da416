#!/usr/bin/env bash
# Whole-process timings with hyperfine, a new process per run: `headroom render` into a
# directory that already holds the rendered files, into an empty directory, and
# `headroom check`, for every example. Usage: bash benches/render.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
command -v hyperfine >/dev/null || { echo "hyperfine is not installed (bash .ci/install-validators)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
bin=target/release/headroom
printf '| spec | render (files there) | render (empty dir) | check |\n|---|---|---|---|\n'
for spec in examples/*/capacity.yaml; do
  name=$(basename "$(dirname "$spec")")
  median() { python3 -c 'import json,sys; print("%.2f ms" % (json.load(open(sys.argv[1]))["results"][0]["median"] * 1000))' "$1"; }
  # check and render exit 1 when the spec has findings; the timing is what matters here.
  hyperfine -N -i --warmup 10 --runs 60 --style none --export-json "$out/a.json" "$bin render --force -o $out/$name $spec" >/dev/null 2>&1
  hyperfine -N -i --warmup 5 --runs 40 --style none --prepare "rm -rf $out/fresh-$name" --export-json "$out/b.json" "$bin render --force -o $out/fresh-$name $spec" >/dev/null 2>&1
  hyperfine -N -i --warmup 10 --runs 60 --style none --export-json "$out/c.json" "$bin check $spec --format json" >/dev/null 2>&1
  printf '| %s | %s | %s | %s |\n' "$name" "$(median "$out/a.json")" "$(median "$out/b.json")" "$(median "$out/c.json")"
done
# Growth: `check` of generated specs of 1,000 and 10,000 services (benches/generated.rs).
printf '\n| generated spec | check |\n|---|---|\n'
for n in 1000 10000; do
  HEADROOM_GENERATE=$n cargo bench --quiet --bench check > "$out/generated-$n.yaml"
  hyperfine -N -i --warmup 3 --runs 20 --style none --export-json "$out/g.json" "$bin check $out/generated-$n.yaml --format json" >/dev/null 2>&1
  printf '| %s services | %s |\n' "$n" "$(median "$out/g.json")"
done
