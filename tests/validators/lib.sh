# shellcheck shell=bash
# Shared helpers for tests/validators/*.sh. Source it; do not run it.
# Every server started here listens on 127.0.0.1 or a unix socket in a
# per-run temp dir and is stopped by PID from the EXIT trap.

VALIDATORS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HEADROOM_VENV=${HEADROOM_VENV:-$HOME/.cache/headroom/venv}
SYS_PY=/usr/bin/python3
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
NSS_WRAPPER_LIB=$(ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so 2>/dev/null | head -n1 || true)

# ---- version ends -------------------------------------------------------
# HEADROOM_END=oldest (the default): the host's programs, Debian 12 (nginx 1.22,
# PostgreSQL 15, PgBouncer 1.18, Redis 7.0). HEADROOM_END=newest: the Debian 13 root
# that ../shared/tools/trixie-root builds (nginx 1.26, PostgreSQL 17, PgBouncer 1.24,
# Redis 8.0, Valkey 8.1); programs run there with `trixie-root run`, so every file
# they read lives under the root's /tmp and is named by its path inside the root.
HEADROOM_END=${HEADROOM_END:-oldest}
END_ROOT=""
TRIXIE_TOOL=""

# The trixie-root tool: $HEADROOM_TRIXIE_TOOL, else shared/tools beside the repository
# (or beside the folder of worktrees).
find_trixie_tool() {
  local repo c
  repo=$(cd "$VALIDATORS_DIR/../.." && pwd)
  for c in "${HEADROOM_TRIXIE_TOOL:-}" "$repo/../shared/tools/trixie-root" "$repo/../../shared/tools/trixie-root"; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

case "$HEADROOM_END" in
  oldest) ;;
  newest)
    TRIXIE_TOOL=$(find_trixie_tool) || { echo "error: HEADROOM_END=newest needs shared/tools/trixie-root (or HEADROOM_TRIXIE_TOOL)" >&2; exit 1; }
    END_ROOT=$("$TRIXIE_TOOL") || { echo "error: trixie-root could not build its root" >&2; exit 1; }
    ;;
  *) echo "error: HEADROOM_END must be oldest or newest, not $HEADROOM_END" >&2; exit 1 ;;
esac

# endpath PATH: PATH (under the end's root) as the end's programs see it.
endpath() { if [ -n "$END_ROOT" ]; then echo "${1#"$END_ROOT"}"; else echo "$1"; fi; }
# end_run CMD ARG...: run CMD with the end's programs (paths through endpath).
end_run() { if [ -n "$END_ROOT" ]; then "$TRIXIE_TOOL" run "$@"; else "$@"; fi; }
# end_as_pg CMD ARG...: the same, as the postgres OS user (postgres refuses root).
end_as_pg() {
  if [ -n "$END_ROOT" ]; then "$TRIXIE_TOOL" run runuser -u postgres -- "$@"
  elif is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}
# signal_end SIG PID: send SIG to a program started in the background with end_run
# (in the root, PID is trixie-root's unshare and the program is its child).
# (in the root, PID is a shell or trixie-root's unshare, and the program a descendant:
# every descendant, deepest first, gets SIG; then PID itself).
descendants() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do descendants "$child"; echo "$child"; done
}
signal_end() {
  local sig=$1 pid=$2 p
  for p in $(descendants "$pid") "$pid"; do kill "-$sig" "$p" 2>/dev/null || true; done
}
# The end's PostgreSQL server binaries (a path the end sees) and libnss_wrapper.
END_PGBIN=$(endpath "$(ls -d "$END_ROOT"/usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)")
END_NSS_WRAPPER_LIB=$(endpath "$(ls "$END_ROOT"/usr/lib/*/libnss_wrapper.so "$END_ROOT"/usr/lib/libnss_wrapper.so 2>/dev/null | head -n1 || true)")

_CLEANUP_PIDS=()
_CLEANUP_CMDS=()
VTMP=""

die() { echo "error: $*" >&2; exit 1; }
note() { echo "note: $*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as the postgres OS user when root (postgres refuses root).
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

_on_exit() {
  local rc=$?
  local _ci
  for ((_ci=${#_CLEANUP_CMDS[@]}-1; _ci>=0; _ci--)); do
    eval "${_CLEANUP_CMDS[$_ci]}" >/dev/null 2>&1 || true
  done
  for pid in "${_CLEANUP_PIDS[@]}"; do
    # A program run in the end's root is a descendant of PID: stop it too.
    for child in $(descendants "$pid"); do kill -TERM "$child" 2>/dev/null || true; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$VTMP" ] && [ -d "$VTMP" ] && [ -z "${HEADROOM_KEEP_TMP:-}" ]; then rm -rf "$VTMP"; fi
  exit "$rc"
}

# make_tmp NAME: create $VTMP (world-readable so the postgres user can read
# copies of the files under test) and install the cleanup trap.
make_tmp() {
  if [ -n "$END_ROOT" ]; then
    mkdir -p "$END_ROOT/tmp"
    VTMP=$(mktemp -d "$END_ROOT/tmp/headroom-$1.XXXXXX")
  else
    VTMP=$(mktemp -d "${TMPDIR:-/tmp}/headroom-$1.XXXXXX")
  fi
  chmod 755 "$VTMP"
  trap _on_exit EXIT
  trap 'exit 130' INT TERM
}

# Register a PID to stop (TERM, then KILL) on exit.
on_exit_kill() { _CLEANUP_PIDS+=("$1"); }
# Register a shell command to run on exit (runs before PIDs are killed).
on_exit_run() { _CLEANUP_CMDS+=("$1"); }

# A free TCP port on 127.0.0.1.
free_port() {
  "$SYS_PY" -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

abspath() { readlink -f -- "$1"; }

need_file() { [ -f "$1" ] || die "no such file: $1"; }

venv_py() {
  [ -x "$HEADROOM_VENV/bin/python" ] || die "venv missing at $HEADROOM_VENV: run .ci/install-validators"
  echo "$HEADROOM_VENV/bin/python"
}

# wait_for SECONDS CMD...: poll CMD every 0.1s until it succeeds.
wait_for() {
  local secs=$1; shift
  local n=$((secs * 10))
  for _ in $(seq 1 "$n"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  return 1
}

# ---- throwaway PostgreSQL ---------------------------------------------
# pg_init DIR: initdb (trust auth, superuser "postgres") into DIR.
# With PG_ON_END=1 the end's PostgreSQL runs it (postgres.sh); otherwise the host's (a
# backend for pgbouncer.sh).
pg_bin() { if [ "${PG_ON_END:-0}" = 1 ]; then echo "$END_PGBIN"; else echo "$PGBIN"; fi; }
pg_run() { if [ "${PG_ON_END:-0}" = 1 ]; then end_as_pg "$@"; else as_pg "$@"; fi; }
pg_path() { if [ "${PG_ON_END:-0}" = 1 ]; then endpath "$1"; else echo "$1"; fi; }
# pg_own PATH: give PATH to the postgres user of whichever system runs PostgreSQL (the
# root's postgres may have another uid than the host's).
pg_own() {
  if ! is_root; then return 0; fi
  if [ "${PG_ON_END:-0}" = 1 ] && [ -n "$END_ROOT" ]; then end_run chown postgres: "$(endpath "$1")"; else chown postgres: "$1"; fi
}

pg_init() {
  local dir=$1
  [ -n "$(pg_bin)" ] || die "PostgreSQL not installed: run .ci/install-validators"
  mkdir -p "$dir"
  pg_own "$dir"
  chmod 700 "$dir"
  pg_run "$(pg_bin)/initdb" -D "$(pg_path "$dir")" -A trust -U postgres -E UTF8 --no-sync >"$VTMP/initdb.log" 2>&1 \
    || { cat "$VTMP/initdb.log" >&2; die "initdb failed"; }
}

# ---- listen addresses -----------------------------------------------------
# By default a server under test listens where the validator says (127.0.0.1 or a
# unix socket), whatever the file sets. HEADROOM_LISTEN_ON=ADDRESS keeps the listen
# setting of the file (redis `bind`, postgres `listen_addresses`, PgBouncer
# `listen_addr`) and connects through ADDRESS, which the file must listen on;
# HEADROOM_NOT_ON=ADDRESS then must refuse the connection (a loopback alias such as
# 127.0.0.3 that a file bound to every interface would answer on).
CONNECT_HOST=${HEADROOM_LISTEN_ON:-127.0.0.1}
keeps_listen() { [ -n "${HEADROOM_LISTEN_ON:-}" ]; }
# refused_on PORT: the connection to HEADROOM_NOT_ON:PORT is refused (nothing listens).
refused_on() {
  [ -n "${HEADROOM_NOT_ON:-}" ] || return 0
  if "$SYS_PY" -c 'import socket,sys
s=socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); sys.exit(1)
except ConnectionRefusedError:
    sys.exit(0)' "$HEADROOM_NOT_ON" "$1"; then
    echo "refused on $HEADROOM_NOT_ON:$1"
  else
    echo "fail: $HEADROOM_NOT_ON:$1 accepted a connection: the server listens on more than the file's addresses" >&2
    return 1
  fi
}

# pg_start DIR PORT SOCKDIR [keep]: start postgres on 127.0.0.1:PORT (+ unix socket
# in SOCKDIR) and register pg_ctl stop (by the PID in postmaster.pid); with `keep`,
# on the listen_addresses its config sets.
pg_start() {
  local dir=$1 port=$2 sock=$3 listen="-c listen_addresses=127.0.0.1 "
  [ "${4:-}" = keep ] && listen=""
  mkdir -p "$sock"
  pg_own "$sock"
  on_exit_run "pg_run '$(pg_bin)/pg_ctl' -D '$(pg_path "$dir")' -m immediate -w -t 20 stop"
  if ! pg_run "$(pg_bin)/pg_ctl" -D "$(pg_path "$dir")" -w -t 60 -l "$(pg_path "$VTMP/postgres.log")" \
      -o "$listen-p $port -k $(pg_path "$sock")" start >"$VTMP/pg_ctl.log" 2>&1; then
    cat "$VTMP/pg_ctl.log" "$VTMP/postgres.log" >&2 2>/dev/null || true
    return 1
  fi
}

pg_stop() {
  pg_run "$(pg_bin)/pg_ctl" -D "$(pg_path "$1")" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# ---- libnss_wrapper ----------------------------------------------------
# nss_hosts_file FILE NAME...: write a hosts file mapping every NAME to 127.0.0.1.
nss_hosts_file() {
  local f=$1; shift
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost"
    local h
    for h in "$@"; do echo "127.0.0.1 $h"; done
  } >"$f"
  chmod 644 "$f"
}
