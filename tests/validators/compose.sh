#!/usr/bin/env bash
# Usage: compose.sh COMPOSE_FILE
# 1. The real `docker-compose -f FILE config -q` (docker-compose 1.29, no
#    engine needed), run from the file's directory.
# 2. compose_check.py: interpolation with docker-compose's own code, then
#    jsonschema (draft 2019-09) against the compose_spec.json docker-compose
#    ships, then memory/cpus/pids values (`memory: lots`, `cpus: "two"`).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 COMPOSE_FILE"
F=$(abspath "$1")
need_file "$F"
command -v docker-compose >/dev/null || die "docker-compose not installed: run .ci/install-validators"

set +e
out=$(cd "$(dirname "$F")" && docker-compose -f "$F" config -q 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  printf '%s\n' "$out" >&2
  echo "fail: docker-compose rejected $F" >&2
  exit 1
fi
[ -n "$out" ] && printf '%s\n' "$out" >&2
if ! "$SYS_PY" "$VALIDATORS_DIR/compose_check.py" "$F"; then
  echo "fail: $F failed the compose-spec/resource checks" >&2
  exit 1
fi
echo "ok: docker-compose accepted $F"
