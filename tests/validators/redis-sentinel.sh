#!/usr/bin/env bash
# Usage: redis-sentinel.sh SENTINEL_CONF
# Starts a throwaway redis master on 127.0.0.1:<free>, then the real
# redis-sentinel on a writable copy of SENTINEL_CONF (sentinel rewrites its
# config) with --port <free> --bind 127.0.0.1 --daemonize no --dir <tmp>
# --logfile '' --pidfile <tmp>/sentinel.pid. In the copy, every
# `sentinel monitor NAME HOST PORT QUORUM` gets PORT -> the temp master's port;
# a host name is kept and resolved to 127.0.0.1 through libnss_wrapper (so a
# missing `sentinel resolve-hostnames yes` still fails as it would for real),
# an IP literal becomes 127.0.0.1, as do IPs in `sentinel known-*` lines.
# Passes when sentinel starts, answers PING and knows every monitored master.
# HEADROOM_END=newest runs the sentinel of the Debian 13 root (lib.sh): Redis 8.0, or
# Valkey 8.1 with HEADROOM_REDIS=valkey-server; the master is the host's Redis.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 SENTINEL_CONF"
CONF=$(abspath "$1")
need_file "$CONF"
command -v redis-server >/dev/null || die "redis not installed: run .ci/install-validators"
SENTINEL=("${HEADROOM_REDIS:-redis-server}")  # `redis-server FILE --sentinel` == redis-sentinel FILE

make_tmp sentinel
MPORT=$(free_port)
SPORT=$(free_port)
while [ "$SPORT" = "$MPORT" ]; do SPORT=$(free_port); done

redis-server --port "$MPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$VTMP" --logfile "$VTMP/master.log" --pidfile "$VTMP/master.pid" >/dev/null 2>&1 &
MPID=$!
on_exit_kill "$MPID"
wait_for 10 redis-cli -h 127.0.0.1 -p "$MPORT" PING || { cat "$VTMP/master.log" >&2; die "temp redis master did not start"; }

"$SYS_PY" - "$CONF" "$VTMP/sentinel.conf" "$MPORT" >"$VTMP/plan" <<'PY'
import re, sys, ipaddress
src, dst, mport = sys.argv[1:]
def is_ip(h):
    try: ipaddress.ip_address(h); return True
    except ValueError: return False
out, hosts, masters = [], set(), []
for line in open(src).read().splitlines():
    t = line.split()
    if len(t) >= 2 and t[0].lower() == 'sentinel':
        sub = t[1].lower()
        if sub == 'monitor' and len(t) >= 6:
            name, host = t[2], t[3]
            masters.append(name)
            if is_ip(host): host = '127.0.0.1'
            else: hosts.add(host)
            line = ' '.join(['sentinel', 'monitor', name, host, mport] + t[5:])
        elif sub.startswith('known-'):
            line = ' '.join('127.0.0.1' if is_ip(x) else x for x in t)
    out.append(line)
open(dst, 'w').write('\n'.join(out) + '\n')
for h in sorted(hosts): print('HOST', h)
for m in masters: print('MASTER', m)
PY
mapfile -t HOSTS < <(awk '$1=="HOST"{print $2}' "$VTMP/plan")
mapfile -t MASTERS < <(awk '$1=="MASTER"{print $2}' "$VTMP/plan")
nss_hosts_file "$VTMP/hosts" "${HOSTS[@]}"

ET=$(endpath "$VTMP")
end_run env LD_PRELOAD="$END_NSS_WRAPPER_LIB" NSS_WRAPPER_HOSTS="$ET/hosts" \
  "${SENTINEL[@]}" "$ET/sentinel.conf" --sentinel --port "$SPORT" --bind 127.0.0.1 --daemonize no \
  --dir "$ET" --logfile '' --pidfile "$ET/sentinel.pid" >"$VTMP/sentinel.log" 2>&1 &
SPID=$!
on_exit_kill "$SPID"
up=0
for _ in $(seq 1 100); do
  kill -0 "$SPID" 2>/dev/null || break
  if [ "$(redis-cli -h 127.0.0.1 -p "$SPORT" PING 2>/dev/null)" = PONG ]; then up=1; break; fi
  sleep 0.1
done
if [ $up -ne 1 ]; then
  sed "s#$ET/sentinel.conf#$CONF#g" "$VTMP/sentinel.log" >&2
  echo "fail: redis-sentinel rejected $CONF" >&2
  exit 1
fi
[ "${#MASTERS[@]}" -gt 0 ] || note "no 'sentinel monitor' line in $CONF"
for m in "${MASTERS[@]}"; do
  addr=$(redis-cli -h 127.0.0.1 -p "$SPORT" SENTINEL get-master-addr-by-name "$m" | paste -sd: -)
  if [ -z "$addr" ]; then
    cat "$VTMP/sentinel.log" >&2; echo "fail: sentinel does not know master $m" >&2; exit 1
  fi
  quorum=$(redis-cli -h 127.0.0.1 -p "$SPORT" SENTINEL master "$m" | awk 'p{print;exit} $0=="quorum"{p=1}')
  echo "master $m = $addr quorum=$quorum"
done
redis-cli -h 127.0.0.1 -p "$SPORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
echo "ok: ${SENTINEL[0]} --sentinel ($HEADROOM_END end) accepted $CONF"
