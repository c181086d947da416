#!/usr/bin/env python3
"""Usage: k8s_configmaps.py OUTDIR MANIFEST...

Writes every data entry of every ConfigMap in the manifests (multi-document YAML,
read with PyYAML, as kubectl-side tools read it) to OUTDIR/<configmap name>/<key>,
byte for byte, and prints one `name/key` line per file written. The embedded files
then go through the same validators as the files on disk.
"""
import os
import sys

import yaml


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap":
                    continue
                name = doc["metadata"]["name"]
                for key, value in (doc.get("data") or {}).items():
                    if not isinstance(value, str) or "/" in key or key in (".", ".."):
                        print(f"fail: {path}: ConfigMap {name} key {key!r} is not a file", file=sys.stderr)
                        return 1
                    os.makedirs(os.path.join(out, name), exist_ok=True)
                    with open(os.path.join(out, name, key), "w", encoding="utf-8", newline="") as w:
                        w.write(value)
                    print(f"{name}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
