#!/usr/bin/env bash
# Usage: pgbouncer.sh PGBOUNCER_INI
# Starts a throwaway PostgreSQL on 127.0.0.1:P, then the real pgbouncer in
# the foreground (`pgbouncer [-u postgres] INI`) on a rewritten copy of the
# ini, runs `select 1` THROUGH pgbouncer with psql, and fails on any
# ERROR/FATAL log line, an early exit or a failed query.
#
# What is overridden in the copy (every other line is kept verbatim):
#   [databases]  host= and port= of every entry -> 127.0.0.1 / P (host= added
#                when absent); each dbname/user named is created in the temp
#                PostgreSQL.
#   [pgbouncer]  listen_addr=127.0.0.1, listen_port=<free>, unix_socket_dir=<tmp>,
#                auth_file=<tmp>/userlist.txt, logfile=<tmp>/pgbouncer.log,
#                pidfile=<tmp>/pgbouncer.pid; `user` (run-as) is dropped
#                (-u postgres is used when root).
#                auth_type: kept when trust/any/plain/md5/scram-sha-256
#                (userlist gets plain-text passwords, which pgbouncer accepts
#                for those); hba/cert/pam -> md5, auth_hba_file dropped.
#                server_tls_*/client_tls_* are kept (missing files fail: real).
# HEADROOM_LISTEN_ON=ADDRESS (lib.sh): listen_addr is kept from the file and the
# query goes through ADDRESS; HEADROOM_NOT_ON=ADDRESS must refuse.
# HEADROOM_END=newest runs PgBouncer 1.24 of the Debian 13 root (lib.sh), else the
# host's; the PostgreSQL behind it is the host's either way.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 PGBOUNCER_INI"
INI=$(abspath "$1")
need_file "$INI"
command -v pgbouncer >/dev/null || die "pgbouncer not installed: run .ci/install-validators"

make_tmp pgbouncer
# Both the host's postgres (the backend) and the end's (pgbouncer -u postgres) write here.
chmod 1777 "$VTMP"
DATA=$VTMP/data
pg_init "$DATA"
PGPORT=$(free_port)
pg_start "$DATA" "$PGPORT" "$VTMP/pgsock" || die "temp postgres did not start"

PGB_PORT=$(free_port)
while [ "$PGB_PORT" = "$PGPORT" ]; do PGB_PORT=$(free_port); done
PASSWORD=headroom-test

# Rewrite the ini line for line (same line numbers); print "DB USER" for the query and the roles/dbs to create.
"$SYS_PY" - "$INI" "$VTMP" "$PGPORT" "$PGB_PORT" "$PASSWORD" "$(endpath "$VTMP")" "${HEADROOM_LISTEN_ON:+keep}" >"$VTMP/plan" <<'PY'
import re, sys
ini, host_tmp, pgport, pgbport, password, tmp, keep_listen = sys.argv[1:]
lines = open(ini).read().splitlines()
out, section = [], None
dbs, users, first_db = set(), set(), None
pgb_seen = False
auth_type = None
over = {
    'listen_addr': '127.0.0.1', 'listen_port': pgbport, 'unix_socket_dir': tmp,
    'auth_file': tmp + '/userlist.txt', 'logfile': tmp + '/pgbouncer.log',
    'pidfile': tmp + '/pgbouncer.pid',
}
file_listen = None
def emit_overrides():
    for k, v in over.items():
        out.append('; overridden by pgbouncer.sh:')
        out.append(f'{k} = {v}')
for line in lines:
    s = line.strip()
    m = re.match(r'^\[(\w+)\]', s)
    if m:
        section = m.group(1).lower()
        out.append(line)
        if section == 'pgbouncer':
            pgb_seen = True
        continue
    if not s or s[0] in ';#' or '=' not in s:
        out.append(line); continue
    key, val = [x.strip() for x in s.split('=', 1)]
    if section == 'databases':
        parts = re.findall(r"(\w+)\s*=\s*('(?:[^']|'')*'|\S+)", val)
        kv = [(k, v) for k, v in parts if k not in ('host', 'port')]
        d = dict(parts)
        kv = [('host', '127.0.0.1'), ('port', pgport)] + kv
        dbname = d.get('dbname', key).strip("'")
        if key != '*':
            dbs.add(dbname)
            if first_db is None:
                first_db = (key, d.get('user', '').strip("'"))
        if 'user' in d:
            users.add(d['user'].strip("'"))
        if 'auth_user' in d:
            users.add(d['auth_user'].strip("'"))
        out.append(f'{key} = ' + ' '.join(f'{k}={v}' for k, v in kv))
        continue
    if section == 'users':
        out.append(line); continue
    if section == 'pgbouncer':
        k = key.lower()
        if k == 'listen_addr':
            file_listen = val
        if k in over:
            out.append(f'; replaced by pgbouncer.sh: {s}'); continue
        if k == 'user':
            out.append(f'; dropped by pgbouncer.sh (runs with -u): {s}'); continue
        if k == 'auth_type':
            auth_type = val
            if val not in ('trust', 'any', 'plain', 'md5', 'scram-sha-256'):
                print(f'NOTE auth_type {val} replaced by md5', file=sys.stderr)
                out.append('auth_type = md5'); continue
        if k == 'auth_hba_file':
            out.append(f'; dropped by pgbouncer.sh: {s}'); continue
        if k in ('admin_users', 'stats_users', 'auth_user'):
            for u in re.split(r'[,\s]+', val):
                if u: users.add(u)
    out.append(line)
# appended (not inserted) so pgbouncer's line numbers match the original file
if keep_listen:
    if file_listen is None:
        sys.exit('pgbouncer.sh: the file sets no listen_addr to keep')
    over['listen_addr'] = file_listen
out.append('[pgbouncer]'); emit_overrides()
open(host_tmp + '/pgbouncer.ini', 'w').write('\n'.join(out) + '\n')
if first_db is None:
    first_db = ('postgres', '')
qdb, quser = first_db
quser = quser or 'postgres'
users.add(quser); users.add('postgres')
with open(host_tmp + '/userlist.txt', 'w') as f:
    for u in sorted(users):
        f.write(f'"{u}" "{password}"\n')
print('QUERY', qdb, quser)
for u in sorted(users): print('USER', u)
for d in sorted(dbs): print('DB', d)
PY
chmod 644 "$VTMP/pgbouncer.ini" "$VTMP/userlist.txt"


psql_pg() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres "$@"; }
while read -r kind a b; do
  case "$kind" in
    USER) [ "$a" = postgres ] || psql_pg -c "CREATE ROLE \"$a\" LOGIN PASSWORD '$PASSWORD'" >/dev/null ;;
    DB) [ "$a" = postgres ] || psql_pg -c "CREATE DATABASE \"$a\"" >/dev/null ;;
    QUERY) QDB=$a; QUSER=$b ;;
  esac
done <"$VTMP/plan"

RUNAS=()
if is_root; then RUNAS=(-u postgres); fi
end_run pgbouncer "${RUNAS[@]}" "$(endpath "$VTMP")/pgbouncer.ini" >"$VTMP/stdout.log" 2>&1 &
PGB_PID=$!
on_exit_kill "$PGB_PID"

show_log() {
  cat "$VTMP/stdout.log" "$VTMP/pgbouncer.log" 2>/dev/null | sort -u | sed "s#$(endpath "$VTMP")/pgbouncer.ini#$INI#g" >&2
}
started=$(date +%s)
up=0
for _ in $(seq 1 100); do
  kill -0 "$PGB_PID" 2>/dev/null || break
  if "$PGBIN/pg_isready" -q -h "$CONNECT_HOST" -p "$PGB_PORT" -d "$QDB" -U "$QUSER" -t 1; then up=1; break; fi
  sleep 0.1
done
if [ $up -ne 1 ]; then
  show_log
  echo "fail: pgbouncer did not start with $INI" >&2
  exit 1
fi
set +e
res=$(PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -At -h "$CONNECT_HOST" -p "$PGB_PORT" -U "$QUSER" -d "$QDB" -c 'select 1' 2>&1)
qrc=$?
set -e
refused_on "$PGB_PORT" || { show_log; exit 1; }
# stay up for at least 2 s, as pgbouncer reports some errors after startup
while [ $(( $(date +%s) - started )) -lt 2 ]; do sleep 0.2; done
alive=0; kill -0 "$PGB_PID" 2>/dev/null && alive=1
signal_end INT "$PGB_PID"
wait "$PGB_PID" 2>/dev/null || true
if [ $qrc -ne 0 ] || [ "$res" != 1 ]; then
  show_log; echo "$res" >&2
  echo "fail: query through pgbouncer failed (db=$QDB user=$QUSER) for $INI" >&2
  exit 1
fi
if grep -hE ' (ERROR|FATAL) ' "$VTMP/stdout.log" "$VTMP/pgbouncer.log" 2>/dev/null | grep -q .; then
  show_log
  echo "fail: pgbouncer logged ERROR/FATAL for $INI" >&2
  exit 1
fi
[ $alive -eq 1 ] || { show_log; echo "fail: pgbouncer exited early for $INI" >&2; exit 1; }
echo "select 1 via pgbouncer (db=$QDB user=$QUSER): $res"
echo "ok: pgbouncer ($HEADROOM_END end) accepted $INI"
