#!/usr/bin/env bash
# Usage: gunicorn-cmd.sh "gunicorn --bind 0.0.0.0:8000 --workers 4 -k gthread --threads 8 arena.wsgi"
# (or the words as separate arguments). A leading `gunicorn`, `python -m
# gunicorn` or path to gunicorn is dropped. Parses the arguments with
# gunicorn's own argparser, sets every value through gunicorn's validators,
# imports worker_class, then runs the real `gunicorn --check-config ARGS` in a
# temp dir with a stub module for each APP_MODULE. A -c/--config file that
# does not exist here is dropped from that run (with a note).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 \"gunicorn ARGS... APP_MODULE\""
PY=$(venv_py)
if [ $# -eq 1 ]; then
  mapfile -t WORDS < <("$SYS_PY" -c 'import shlex,sys; print("\n".join(shlex.split(sys.argv[1])))' "$1")
else
  WORDS=("$@")
fi
CMDLINE="${WORDS[*]}"
# drop the program name
if [ "${#WORDS[@]}" -ge 3 ] && [[ "${WORDS[0]}" == python* ]] && [ "${WORDS[1]}" = -m ] && [ "${WORDS[2]}" = gunicorn ]; then
  WORDS=("${WORDS[@]:3}")
elif [ "${#WORDS[@]}" -ge 1 ] && [[ "$(basename -- "${WORDS[0]}")" == gunicorn ]]; then
  WORDS=("${WORDS[@]:1}")
fi

make_tmp gunicorn-cmd
mkdir -p "$VTMP/app"
if ! plan=$(cd "$VTMP/app" && "$PY" "$VALIDATORS_DIR/gunicorn_check.py" cmd "${WORDS[@]}"); then
  echo "fail: gunicorn command rejected: $CMDLINE" >&2
  exit 1
fi
printf '%s\n' "$plan" | grep -vE '^(APP|CONFIG) '
RUN=("${WORDS[@]}")
cfgfile=$(printf '%s\n' "$plan" | awk '$1=="CONFIG"{print $2}')
if [ -n "$cfgfile" ] && [ ! -f "$cfgfile" ]; then
  note "config file $cfgfile not present here: dropped from the --check-config run"
  RUN=()
  skip=0
  for w in "${WORDS[@]}"; do
    if [ $skip = 1 ]; then skip=0; continue; fi
    case "$w" in
      -c|--config) skip=1; continue ;;
      --config=*|-c?*) continue ;;
    esac
    RUN+=("$w")
  done
fi
while read -r kind app; do
  [ "$kind" = APP ] || continue
  "$PY" "$VALIDATORS_DIR/gunicorn_check.py" stub "$VTMP/app" "$app"
done <<<"$plan"
set +e
out=$(cd "$VTMP/app" && "$HEADROOM_VENV/bin/gunicorn" --check-config "${RUN[@]}" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  printf '%s\n' "$out" >&2
  echo "fail: gunicorn --check-config rejected: $CMDLINE" >&2
  exit 1
fi
echo "ok: gunicorn accepted $CMDLINE"
