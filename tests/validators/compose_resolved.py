"""Prints what docker-compose 1.29 itself makes of a compose file, as JSON: per
service the environment (after interpolation and `$$` unescaping), the build
context (an absolute path once resolved against the file's folder), the command,
the health check and each volume as [source, target]. Run with /usr/bin/python3 (Debian's
docker-compose package provides `compose`), from anywhere:

    compose_resolved.py path/to/docker-compose.yml

Tests compare these values with the spec's: a value compose would interpolate,
re-base or fold is caught here, not by a key check.
"""
import json
import os
import sys

from compose.config import config
from compose.config.environment import Environment


def main(path):
    base = os.path.dirname(os.path.abspath(path))
    details = config.find(base, [os.path.basename(path)], Environment.from_env_file(base))
    loaded = config.load(details)
    out = {}
    for service in loaded.services:
        out[service["name"]] = {
            "environment": service.get("environment") or {},
            "build": (service.get("build") or {}).get("context"),
            "command": service.get("command"),
            "healthcheck": service.get("healthcheck"),
            "volumes": [[v.external, v.internal] for v in service.get("volumes", [])],
        }
    json.dump(out, sys.stdout, ensure_ascii=True, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: compose_resolved.py COMPOSE_FILE", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
