# shellcheck shell=bash
# Shared helpers for tests/validators/*.sh. Source it; do not run it.
# Every server started here listens on 127.0.0.1 or a unix socket in a
# per-run temp dir and is stopped by PID from the EXIT trap.

VALIDATORS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HEADROOM_VENV=${HEADROOM_VENV:-$HOME/.cache/headroom/venv}
SYS_PY=/usr/bin/python3
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
NSS_WRAPPER_LIB=$(ls /usr/lib/*/libnss_wrapper.so /usr/lib/libnss_wrapper.so 2>/dev/null | head -n1 || true)

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
  VTMP=$(mktemp -d "${TMPDIR:-/tmp}/headroom-$1.XXXXXX")
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
pg_init() {
  local dir=$1
  [ -n "$PGBIN" ] || die "PostgreSQL not installed: run .ci/install-validators"
  mkdir -p "$dir"
  if is_root; then chown postgres: "$dir"; fi
  chmod 700 "$dir"
  as_pg "$PGBIN/initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-sync >"$VTMP/initdb.log" 2>&1 \
    || { cat "$VTMP/initdb.log" >&2; die "initdb failed"; }
}

# pg_start DIR PORT SOCKDIR: start postgres on 127.0.0.1:PORT (+ unix socket
# in SOCKDIR) and register pg_ctl stop (by the PID in postmaster.pid).
pg_start() {
  local dir=$1 port=$2 sock=$3
  mkdir -p "$sock"
  if is_root; then chown postgres: "$sock"; fi
  on_exit_run "as_pg '$PGBIN/pg_ctl' -D '$dir' -m immediate -w -t 20 stop"
  if ! as_pg "$PGBIN/pg_ctl" -D "$dir" -w -t 60 -l "$VTMP/postgres.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $sock" start >"$VTMP/pg_ctl.log" 2>&1; then
    cat "$VTMP/pg_ctl.log" "$VTMP/postgres.log" >&2 2>/dev/null || true
    return 1
  fi
}

pg_stop() {
  as_pg "$PGBIN/pg_ctl" -D "$1" -m fast -w -t 30 stop >/dev/null 2>&1 || true
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
