#!/usr/bin/env bash
# Usage: nginx.sh NGINX_CONF [HOST...]
# Runs the real `nginx -t` on NGINX_CONF with a throwaway prefix dir.
# Upstream host names resolve through libnss_wrapper (never /etc/hosts):
# each HOST given, or, when none is given, every host name found in
# `server NAME[:PORT]` lines of upstream blocks and in *_pass URLs that do not
# name an upstream, is mapped to 127.0.0.1. Any other name still fails.
# The conf is copied to PREFIX/conf/ (so relative pid/temp/log paths stay in
# the prefix); files beside it and the stock /etc/nginx include files
# (mime.types, *_params, ...) are symlinked next to it for relative includes.
# HEADROOM_END=newest runs nginx 1.26 of the Debian 13 root (lib.sh), else the host's.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || die "usage: $0 NGINX_CONF [HOST...]"
CONF=$(abspath "$1"); shift
need_file "$CONF"
command -v nginx >/dev/null || die "nginx not installed: run .ci/install-validators"
[ -n "$END_NSS_WRAPPER_LIB" ] || die "libnss_wrapper not installed: run .ci/install-validators"

make_tmp nginx
PREFIX=$VTMP/prefix
mkdir -p "$PREFIX/conf" "$PREFIX/logs"
cp "$CONF" "$PREFIX/conf/nginx.conf"
srcdir=$(dirname "$CONF")
for f in "$srcdir"/* /etc/nginx/*; do
  [ -e "$f" ] || continue
  b=$(basename "$f")
  [ "$f" = "$CONF" ] && continue
  [ -e "$PREFIX/conf/$b" ] || ln -s "$f" "$PREFIX/conf/$b"
done

if [ $# -gt 0 ]; then
  HOSTS=("$@")
else
  mapfile -t HOSTS < <("$SYS_PY" - "$CONF" <<'PY'
import re, sys, ipaddress
text = open(sys.argv[1]).read()
text = re.sub(r'#[^\n]*', '', text)
names, upstreams = set(), set()
# upstream NAME { ... }
for m in re.finditer(r'\bupstream\s+(\S+)\s*\{(.*?)\}', text, re.S):
    upstreams.add(m.group(1))
    for s in re.finditer(r'(?:^|[;{\s])server\s+([^\s;]+)', m.group(2)):
        names.add(s.group(1))
for m in re.finditer(r'\b(?:proxy|uwsgi|scgi|grpc|fastcgi)_pass\s+(?:[a-z]+://)?([^\s;/]+)', text):
    names.add(m.group(1))
out = set()
for n in names:
    if n.startswith('unix:') or '$' in n:
        continue
    host = n
    if host.startswith('['):
        continue
    host = host.rsplit(':', 1)[0] if host.count(':') == 1 else host
    if host in upstreams:
        continue
    try:
        ipaddress.ip_address(host); continue
    except ValueError:
        pass
    out.add(host)
print("\n".join(sorted(out)))
PY
)
fi
HOSTS_FILE=$VTMP/hosts
nss_hosts_file "$HOSTS_FILE" "${HOSTS[@]}"

set +e
EP=$(endpath "$PREFIX")
out=$(cd "$PREFIX" && end_run env LD_PRELOAD="$END_NSS_WRAPPER_LIB" NSS_WRAPPER_HOSTS="$(endpath "$HOSTS_FILE")" \
  nginx -t -q -p "$EP/" -e "$EP/logs/error.log" -c "$EP/conf/nginx.conf" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ]; then
  printf '%s\n' "$out" | sed "s#$EP/conf/nginx.conf#$CONF#g" >&2
  echo "fail: nginx rejected $CONF (resolved hosts: ${HOSTS[*]:-none})" >&2
  exit 1
fi
[ -n "$out" ] && printf '%s\n' "$out" >&2
echo "ok: nginx ($HEADROOM_END end) accepted $CONF"
