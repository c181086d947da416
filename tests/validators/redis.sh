#!/usr/bin/env bash
# Usage: redis.sh REDIS_CONF
# Starts the real redis-server on REDIS_CONF with these command-line
# overrides (they win over the file): --port 0 --unixsocket <tmp>/redis.sock
# --daemonize no --dir <tmp> --logfile '' --pidfile <tmp>/redis.pid, plus
# --replicaof no one when the file has replicaof/slaveof (never connect out).
# Redis chdirs to `dir` while it reads the file, before any override applies, so
# the server reads a copy whose `dir` lines name the temp dir (same line numbers).
# Then prints CONFIG GET maxmemory, maxmemory-policy, maxclients, tcp-backlog,
# appendonly, save as `key = value` lines and stops it with SHUTDOWN NOSAVE.
# HEADROOM_LISTEN_ON=ADDRESS (lib.sh): --port is a free TCP port instead of 0, the
# file's `bind` stands, and ADDRESS must answer PING (PONG, or NOAUTH when the file
# wants a password); HEADROOM_NOT_ON=ADDRESS must refuse. `bind` is printed too.
# HEADROOM_END=newest runs the server of the Debian 13 root (lib.sh): Redis 8.0, or
# Valkey 8.1 with HEADROOM_REDIS=valkey-server; else the host's Redis 7.0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 REDIS_CONF"
CONF=$(abspath "$1")
need_file "$CONF"
SERVER=${HEADROOM_REDIS:-redis-server}
end_run sh -c "command -v $SERVER" >/dev/null || die "$SERVER not installed ($HEADROOM_END end): run .ci/install-validators"

make_tmp redis
SOCK=$VTMP/redis.sock
EXTRA=()
if grep -qiE '^[[:space:]]*(replicaof|slaveof)[[:space:]]' "$CONF"; then
  note "replicaof/slaveof in $CONF: started with --replicaof no one"
  EXTRA+=(--replicaof no one)
fi
RUN_CONF=$VTMP/redis.conf
ET=$(endpath "$VTMP")
sed -E "s#^([[:space:]]*)[dD][iI][rR]([[:space:]].*)?\$#\\1dir $ET#" "$CONF" >"$RUN_CONF"
PORT=0
if keeps_listen; then PORT=$(free_port); fi
end_run "$SERVER" "$ET/redis.conf" --port "$PORT" --unixsocket "$ET/redis.sock" --unixsocketperm 700 --daemonize no \
  --dir "$ET" --logfile '' --pidfile "$ET/redis.pid" "${EXTRA[@]}" >"$VTMP/redis.log" 2>&1 &
PID=$!
on_exit_kill "$PID"

up=0
for _ in $(seq 1 100); do
  kill -0 "$PID" 2>/dev/null || break
  if [ -S "$SOCK" ] && [ "$(redis-cli -s "$SOCK" PING 2>/dev/null)" = PONG ]; then up=1; break; fi
  sleep 0.1
done
if [ $up -ne 1 ]; then
  sed "s#$ET/redis.conf#$CONF#g" "$VTMP/redis.log" >&2
  echo "fail: redis-server rejected $CONF" >&2
  exit 1
fi
if keeps_listen; then
  answer=$(redis-cli -h "$CONNECT_HOST" -p "$PORT" PING 2>&1 || true)
  case "$answer" in
    PONG|NOAUTH*) echo "answered on $CONNECT_HOST:$PORT: $answer" ;;
    *) echo "$answer" >&2; echo "fail: redis-server did not answer on $CONNECT_HOST:$PORT" >&2; exit 1 ;;
  esac
  refused_on "$PORT" || exit 1
fi
for k in bind maxmemory maxmemory-policy maxclients tcp-backlog appendonly save; do
  v=$(redis-cli -s "$SOCK" --no-raw CONFIG GET "$k" | sed -n '2p' | sed -E 's/^[0-9]+\) //; s/^"(.*)"$/\1/')
  echo "$k = $v"
done
if grep -q '# WARNING' "$VTMP/redis.log"; then grep '# WARNING' "$VTMP/redis.log" | sed 's/^/redis: /' >&2; fi
redis-cli -s "$SOCK" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
echo "ok: $SERVER ($HEADROOM_END end) accepted $CONF"
