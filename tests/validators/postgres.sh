#!/usr/bin/env bash
# Usage: postgres.sh GENERATED_CONF
# 1. initdb a throwaway data dir (as the postgres user, trust auth) whose
#    postgresql.conf ends with `include = '<copy of GENERATED_CONF>'`.
# 2. `postgres -D DIR -C max_connections` must succeed (parses the file).
# 3. Start postgres for real (listen_addresses=127.0.0.1, a free port and a
#    socket dir in the temp dir: these three are overridden on the command
#    line), run `SHOW max_connections` through psql, then `SHOW key` for every
#    key set in GENERATED_CONF, printed as `key = value` lines; stop it.
# HEADROOM_LISTEN_ON / HEADROOM_NOT_ON (lib.sh): keep the file's listen_addresses.
# HEADROOM_END=newest runs PostgreSQL 17 of the Debian 13 root (lib.sh), else the host's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 GENERATED_CONF"
GEN=$(abspath "$1")
need_file "$GEN"

PG_ON_END=1
make_tmp postgres
pg_own "$VTMP"
DATA=$VTMP/data
pg_init "$DATA"
# a connection through a loopback alias comes from that alias
if keeps_listen; then echo "host all all 127.0.0.0/8 trust" >>"$DATA/pg_hba.conf"; fi
cp "$GEN" "$VTMP/generated.conf"
chmod 644 "$VTMP/generated.conf"
printf "\ninclude = '%s'\n" "$(pg_path "$VTMP/generated.conf")" >>"$DATA/postgresql.conf"

set +e
out=$(cd "$VTMP" && pg_run "$(pg_bin)/postgres" -D "$(pg_path "$DATA")" -C max_connections 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  printf '%s\n' "$out" | sed "s#$(pg_path "$VTMP")/generated.conf#$GEN#g" >&2
  echo "fail: postgres rejected $GEN (postgres -C)" >&2
  exit 1
fi

PORT=$(free_port)
SOCK=$VTMP/sock
KEEP=""
if keeps_listen; then KEEP=keep; fi
if ! pg_start "$DATA" "$PORT" "$SOCK" $KEEP 2> >(sed "s#$VTMP/generated.conf#$GEN#g" >&2); then
  echo "fail: postgres did not start with $GEN" >&2
  exit 1
fi

psql_show() {
  "$PGBIN/psql" -X -q -At -h "$CONNECT_HOST" -p "$PORT" -U postgres -d postgres -c "SHOW $1"
}
mc=$(psql_show max_connections) || { echo "fail: psql could not query the started server" >&2; exit 1; }
echo "max_connections = $mc"

mapfile -t KEYS < <(sed -e 's/#.*//' "$VTMP/generated.conf" | awk '
  NF { line=$0; sub(/^[ \t]+/, "", line); split(line, a, /[ \t=]/); k=a[1];
       if (k != "" && k != "include" && k != "include_dir" && k != "include_if_exists" && !seen[k]++) print k }')
for k in "${KEYS[@]}"; do
  [ "$k" = max_connections ] && continue
  suffix=""
  case "$k" in
    listen_addresses) keeps_listen || suffix="  # overridden for the test" ;;
    port|unix_socket_directories) suffix="  # overridden for the test" ;;
  esac
  if v=$(psql_show "\"$k\"" 2>&1); then
    echo "$k = $v$suffix"
  else
    echo "$v" >&2; echo "fail: SHOW $k failed" >&2; exit 1
  fi
done
refused_on "$PORT" || exit 1
pg_stop "$DATA"
echo "ok: postgres ($HEADROOM_END end) accepted $GEN"
