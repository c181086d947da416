#!/usr/bin/env bash
# Usage: kubernetes.sh DIR VERSION...
# Proves a folder of Kubernetes manifests the way a cluster would take it:
#  1. kustomization.yaml resolves: every file under `resources:` exists in DIR,
#     and every *.yaml/*.yml in DIR other than kustomization.yaml is listed (a
#     rendered manifest that `kubectl apply -k` would skip is a bug);
#  2. every listed file holds at least one document, each with apiVersion/kind;
#  3. `kubernetes-validate --strict -k VERSION.0` (the API's bundled JSON schemas,
#     offline; unknown fields fail) accepts every listed file, for each VERSION
#     given (`1.25`, `1.37`).
# Fails when kubernetes-validate is missing: run .ci/install-validators.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 2 ] || die "usage: $0 DIR VERSION..."
DIR=$(abspath "$1"); shift
[ -d "$DIR" ] || die "no such directory: $DIR"
KV=$HEADROOM_VENV/bin/kubernetes-validate
[ -x "$KV" ] || die "kubernetes-validate missing at $KV: run .ci/install-validators"
PY=$(venv_py)

mapfile -t FILES < <("$PY" - "$DIR" <<'PY'
import os, sys, yaml
d = sys.argv[1]
k = os.path.join(d, "kustomization.yaml")
if not os.path.isfile(k):
    sys.exit(f"fail: no kustomization.yaml in {d}")
doc = yaml.safe_load(open(k))
if not isinstance(doc, dict) or doc.get("kind") != "Kustomization":
    sys.exit(f"fail: {k} is not a Kustomization")
resources = doc.get("resources") or []
bad = [r for r in resources if not isinstance(r, str) or not os.path.isfile(os.path.join(d, r))]
if bad:
    sys.exit(f"fail: kustomization.yaml lists resources that do not exist: {bad}")
if len(set(resources)) != len(resources):
    sys.exit("fail: kustomization.yaml lists a resource twice")
on_disk = sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
unlisted = sorted(set(on_disk) - set(resources))
if unlisted:
    sys.exit(f"fail: manifests in {d} that kustomization.yaml does not list: {unlisted}")
for r in resources:
    docs = [x for x in yaml.safe_load_all(open(os.path.join(d, r))) if x is not None]
    if not docs:
        sys.exit(f"fail: {r} holds no document")
    for x in docs:
        if not isinstance(x, dict) or not x.get("apiVersion") or not x.get("kind"):
            sys.exit(f"fail: {r}: a document without apiVersion/kind")
    print(os.path.join(d, r))
PY
)
[ "${#FILES[@]}" -gt 0 ] || die "no manifests listed in $DIR/kustomization.yaml"

for version in "$@"; do
  set +e
  out=$("$KV" --strict --quiet -k "$version.0" "${FILES[@]}" 2>&1)
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    printf '%s\n' "$out" >&2
    echo "fail: kubernetes-validate --strict -k $version.0 rejected manifests in $DIR" >&2
    exit 1
  fi
  echo "ok: kubernetes-validate --strict -k $version.0 accepted ${#FILES[@]} files in $DIR"
done
