#!/usr/bin/env bash
# Whole-process timings with hyperfine, a new process per run: `headroom render` into a
# directory that already holds the rendered files, into an empty directory, and
# `headroom check`, for every example; `check` of generated specs of 1,000 and 10,000
# services; `scale` on the examples. Usage: bash benches/whole-process.sh
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
# Growth: `check` of generated specs of 1,000 and 10,000 services (benches/generated.rs):
# median, mean and fastest wall clock, and the CPU time (user + system) of a run.
stats() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f ms | %.1f ms | %.1f ms | %.1f ms" % tuple(x * 1000 for x in (r["median"], r["mean"], r["min"], r["user"] + r["system"])))' "$1"; }
printf '\n| generated spec | check median | mean | fastest | CPU time |\n|---|---|---|---|---|\n'
for n in 1000 10000; do
  HEADROOM_GENERATE=$n cargo bench --quiet --bench check > "$out/generated-$n.yaml"
  runs=$(( n == 1000 ? 60 : 20 ))
  hyperfine -N -i --warmup 3 --runs $runs --style none --export-json "$out/g.json" "$bin check $out/generated-$n.yaml --format json" >/dev/null 2>&1
  printf '| %s services | %s |\n' "$n" "$(stats "$out/g.json")"
done
# `scale` on the shipped examples (target: under 200 ms each); scale never writes here.
printf '\n| scale run | median | mean | fastest | CPU time |\n|---|---|---|---|---|\n'
while read -r spec args; do
  hyperfine -N -i --warmup 2 --runs 15 --style none --export-json "$out/s.json" "$bin scale $spec $args" >/dev/null 2>&1
  printf '| %s `%s` | %s |\n' "${spec#examples/}" "$args" "$(stats "$out/s.json")"
done <<'RUNS'
examples/django-compose/capacity.yaml --factor 2
examples/django-compose/capacity.yaml --rps 1000
examples/django-compose/today.yaml --rps 1000
examples/rails-kamal/capacity.yaml --factor 2
examples/voiceassist/capacity.yaml --factor 2
examples/voiceassist-kubernetes/capacity.yaml --factor 2
examples/voiceassist-kubernetes-fixed/capacity.yaml --factor 2
examples/rag-service/capacity.yaml --factor 2
examples/sfpermits-railway/capacity.yaml --users 200
examples/sfpermits-railway/tier2.yaml --factor 2
examples/sfpermits-railway-tier1/capacity.yaml --users 200
examples/sfpermits-railway-tier1/capacity.yaml --factor 20
RUNS
