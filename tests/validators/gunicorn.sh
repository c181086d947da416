#!/usr/bin/env bash
# Usage: gunicorn.sh GUNICORN_CONF_PY [APP_MODULE]
# 1. Strict load (gunicorn_check.py conf): every top-level name must be a
#    gunicorn setting, every value must pass gunicorn's validator, and
#    worker_class must import (gthread, gevent, ...).
# 2. The real `gunicorn --check-config -c CONF APP` in a temp dir holding a
#    tiny WSGI app. APP defaults to app:app; with APP_MODULE (e.g. arena.wsgi
#    or arena.wsgi:application) a stub module of that name is written.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: $0 GUNICORN_CONF_PY [APP_MODULE]"
CONF=$(abspath "$1")
need_file "$CONF"
APP=${2:-app:app}
PY=$(venv_py)

make_tmp gunicorn
"$PY" "$VALIDATORS_DIR/gunicorn_check.py" stub "$VTMP/app" "$APP"

if ! (cd "$VTMP/app" && "$PY" "$VALIDATORS_DIR/gunicorn_check.py" conf "$CONF"); then
  echo "fail: gunicorn config $CONF rejected (strict load)" >&2
  exit 1
fi
set +e
out=$(cd "$VTMP/app" && "$HEADROOM_VENV/bin/gunicorn" --check-config -c "$CONF" "$APP" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  printf '%s\n' "$out" >&2
  echo "fail: gunicorn --check-config rejected $CONF" >&2
  exit 1
fi
echo "ok: gunicorn accepted $CONF"
