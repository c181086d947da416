"""Second opinion on a docker-compose file (run with /usr/bin/python3, which
has the docker-compose 1.29 `compose` package and jsonschema):

1. Interpolate ${VAR} / ${VAR:-default} with docker-compose's own code (env
   from the process and the file's .env), including its type conversions.
2. Validate the result against compose_spec.json (draft 2019-09) with
   jsonschema's Draft201909Validator; report every error with its path.
3. Check resource values neither tool catches: memory-like values
   (deploy.resources.{limits,reservations}.memory, mem_limit,
   mem_reservation, memswap_limit, shm_size) must be a byte count or a size
   like 512m / 1.5g / 8GiB; cpus (deploy.resources.*.cpus, service cpus) must
   be a positive number or numeric string; pids must be an integer.
"""
import json
import os
import re
import sys

import yaml
from jsonschema import Draft201909Validator

from compose.config.environment import Environment
from compose.config.interpolation import interpolate_environment_variables
from compose.const import COMPOSE_SPEC

SCHEMA = "/usr/lib/python3/dist-packages/compose/config/compose_spec.json"
SIZE_RE = re.compile(r"^\s*\d+(\.\d+)?\s*([kmgtp]i?b?|b)?\s*$", re.I)


def main(path):
    errors = []
    with open(path) as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        print(f"fail: {path}: top level is not a mapping", file=sys.stderr)
        return 1
    env = Environment.from_env_file(os.path.dirname(os.path.abspath(path)))
    doc = dict(raw)
    # docker-compose names the sections in the singular here (its type
    # conversion table keys on "service/NAME/deploy/replicas" etc.)
    for section in ("services", "networks", "volumes", "secrets", "configs"):
        if isinstance(doc.get(section), dict):
            doc[section] = interpolate_environment_variables(COMPOSE_SPEC, doc[section], section[:-1], env)

    with open(SCHEMA) as f:
        schema = json.load(f)
    v = Draft201909Validator(schema)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        loc = "/".join(map(str, e.absolute_path)) or "(top)"
        errors.append(f"schema: {loc}: {e.message}")

    def check_size(loc, val):
        if val is None:
            return
        if isinstance(val, bool) or not (isinstance(val, int) or (isinstance(val, str) and SIZE_RE.match(val))):
            errors.append(f"{loc}: {val!r} is not a size (bytes, or a number with b/k/m/g[i][b])")
        elif isinstance(val, int) and val < 0:
            errors.append(f"{loc}: {val!r} is negative")

    def check_cpus(loc, val):
        if val is None:
            return
        try:
            ok = not isinstance(val, bool) and float(val) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            errors.append(f"{loc}: {val!r} is not a positive number of CPUs")

    for name, svc in (doc.get("services") or {}).items():
        if not isinstance(svc, dict):
            continue
        base = f"services/{name}"
        for k in ("mem_limit", "mem_reservation", "memswap_limit", "shm_size"):
            if k in svc and not (k == "memswap_limit" and svc[k] == -1):
                check_size(f"{base}/{k}", svc[k])
        if "cpus" in svc:
            check_cpus(f"{base}/cpus", svc["cpus"])
        res = ((svc.get("deploy") or {}).get("resources") or {})
        if not isinstance(res, dict):
            continue
        for kind in ("limits", "reservations"):
            r = res.get(kind) or {}
            if not isinstance(r, dict):
                continue
            if "memory" in r:
                check_size(f"{base}/deploy/resources/{kind}/memory", r["memory"])
            if "cpus" in r:
                check_cpus(f"{base}/deploy/resources/{kind}/cpus", r["cpus"])
            if "pids" in r and (isinstance(r["pids"], bool) or not isinstance(r["pids"], int)):
                errors.append(f"{base}/deploy/resources/{kind}/pids: {r['pids']!r} is not an integer")
    for e in errors:
        print("fail: " + e, file=sys.stderr)
    if errors:
        return 1
    for name, svc in (doc.get("services") or {}).items():
        res = ((svc.get("deploy") or {}).get("resources") or {})
        lim = res.get("limits") or {}
        print(f"service {name}: cpus={lim.get('cpus', svc.get('cpus'))} "
              f"memory={lim.get('memory', svc.get('mem_limit'))} "
              f"replicas={(svc.get('deploy') or {}).get('replicas')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
