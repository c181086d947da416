#!/usr/bin/env bash
# Usage: sysctl.sh SYSCTL_FILE
# Checks a sysctl.d style file (`key = value`, `#`/`;` comments, a leading
# `-` on a key = ignore failure, as systemd-sysctl does) without applying
# anything: each key (dots or slashes; `*` globs allowed) must map to an
# existing /proc/sys entry, and the value must have the shape of the current
# one (same number of whitespace-separated fields; integer where the current
# field is an integer). Write-only entries only need to exist.
# Prints `key = value (current: ...)` per line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: $0 SYSCTL_FILE"
F=$(abspath "$1")
need_file "$F"

if ! "$SYS_PY" - "$F" <<'PY'
import glob, os, re, sys
path = sys.argv[1]
errors, n = [], 0
INT = re.compile(r'^-?\d+$')
def proc_path(key):
    # sysctl(8): with dots as separators, a '/' in the key stands for a '.'
    if '/' in key.lstrip('/') and '.' not in key.split('/')[0]:
        rel = key.strip('/')
    else:
        rel = '/'.join(p.replace('/', '.') for p in key.split('.'))
    return os.path.join('/proc/sys', rel)
for lineno, line in enumerate(open(path), 1):
    s = line.strip()
    if not s or s[0] in '#;':
        continue
    where = f"{path}:{lineno}"
    if '=' not in s:
        errors.append(f"{where}: not a `key = value` line: {s!r}"); continue
    key, val = [x.strip() for x in s.split('=', 1)]
    ignore = key.startswith('-')
    key = key.lstrip('-')
    if not key or re.search(r'\s', key):
        errors.append(f"{where}: bad key {key!r}"); continue
    p = proc_path(key)
    targets = sorted(glob.glob(p)) if '*' in p else [p]
    if not targets or not all(os.path.exists(t) for t in targets):
        if ignore:
            print(f"{key} = {val} (missing here, ignored because of '-')"); continue
        errors.append(f"{where}: unknown key {key}: cannot stat {p}"); continue
    t = targets[0]
    if os.path.isdir(t):
        errors.append(f"{where}: {key} is a directory ({t})"); continue
    n += 1
    try:
        cur = open(t).read().strip()
    except OSError:
        print(f"{key} = {val} (write-only, shape not checked)"); continue
    cf, vf = cur.split(), val.split()
    if len(cf) != len(vf):
        errors.append(f"{where}: {key} = {val!r} has {len(vf)} field(s), current value {cur!r} has {len(cf)}"); continue
    bad = [f"{v!r}" for c, v in zip(cf, vf) if INT.match(c) and not INT.match(v)]
    if bad:
        errors.append(f"{where}: {key}: {', '.join(bad)} not an integer (current {cur!r})"); continue
    print(f"{key} = {val} (current: {cur})")
for e in errors:
    print("fail: " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
then
  echo "fail: sysctl file $F rejected" >&2
  exit 1
fi
echo "ok: sysctl accepted $F"
