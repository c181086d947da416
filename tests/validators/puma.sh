#!/usr/bin/env bash
# Usage: puma.sh PUMA_RB
# 1. Loads the DSL without a server (puma_check.rb: Puma::Configuration.new(
#    {}, {config_files: [PUMA_RB]}).load + clamp), checks binds and thread
#    counts, prints workers/threads/binds/preload_app/timeouts.
# 2. Boots the real puma (`puma -C puma_boot.rb config.ru`, which loads
#    PUMA_RB and moves its binds to 127.0.0.1 / a temp unix socket) in a temp
#    dir holding a tiny config.ru, with PORT set to a free port (WEB_CONCURRENCY,
#    RAILS_MAX_THREADS etc. are passed through from the caller's env),
#    curls the first tcp bind once and stops it with SIGTERM by PID.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 PUMA_RB"
RB=$(abspath "$1")
need_file "$RB"
command -v puma >/dev/null || die "puma not installed: run .ci/install-validators"

make_tmp puma
APPDIR=$VTMP/app
mkdir -p "$APPDIR/tmp/pids" "$APPDIR/log" "$APPDIR/config"
PORT=${HEADROOM_PUMA_PORT:-$(free_port)}
export PORT

if ! (cd "$APPDIR" && ruby "$VALIDATORS_DIR/puma_check.rb" "$RB"); then
  echo "fail: puma could not load $RB" >&2
  exit 1
fi

cat >"$APPDIR/config.ru" <<'RU'
run ->(env) { [200, { "content-type" => "text/plain" }, ["ok\n"]] }
RU
cd "$APPDIR"
HEADROOM_PUMA_FILE=$RB HEADROOM_TMP=$VTMP HEADROOM_PUMA_BINDS=$VTMP/binds \
  setsid puma -C "$VALIDATORS_DIR/puma_boot.rb" "$APPDIR/config.ru" >"$VTMP/puma.log" 2>&1 </dev/null &
PID=$!
# puma runs in its own process group (setsid): stop the whole group on exit
on_exit_run "kill -TERM -- -$PID; for _w in \$(seq 1 100); do kill -0 -- -$PID 2>/dev/null || break; sleep 0.1; done; kill -KILL -- -$PID"

url=""
for _ in $(seq 1 300); do
  kill -0 "$PID" 2>/dev/null || break
  if [ -z "$url" ] && [ -s "$VTMP/binds" ]; then
    b=$(grep -E '^(tcp|ssl)://' "$VTMP/binds" | head -n1 || true)
    if [ -n "$b" ]; then url="http://${b#*://}"; url=${url%%\?*}; fi
    [[ "$b" == ssl://* ]] && url="https://${b#ssl://}" && url=${url%%\?*}
  fi
  if [ -n "$url" ] && curl -ksSf --max-time 2 "$url/" >"$VTMP/curl.out" 2>/dev/null; then break; fi
  sleep 0.1
done
if ! kill -0 "$PID" 2>/dev/null || [ "$(cat "$VTMP/curl.out" 2>/dev/null)" != ok ]; then
  sed "s#$VALIDATORS_DIR/puma_boot.rb#$RB#g" "$VTMP/puma.log" >&2
  echo "fail: puma did not boot and serve with $RB (binds: $(tr '\n' ' ' <"$VTMP/binds" 2>/dev/null))" >&2
  exit 1
fi
echo "booted: GET $url/ -> ok (binds: $(tr '\n' ' ' <"$VTMP/binds"))"
kill -TERM "$PID" 2>/dev/null || true
for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
echo "ok: puma accepted $RB"
