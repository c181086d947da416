#!/usr/bin/env python3
"""Usage: kamal.py DEPLOY_YML [--keys tests/data/kamal2-keys.json]

Checks a Kamal 2 config/deploy.yml the way Kamal 2.12 validates it, using the
key tree tests/data/kamal2-keys.json (made by gen_kamal_keys.py from Kamal's
own config docs): unknown keys, wrong types, list-vs-hash mistakes, Kamal 1
keys (`traefik:`, `healthcheck:` at the root, ...) all fail. `x-` keys are
ignored at the root only (YAML anchors live there). Also the checks Kamal's
section validators add: required service/image/registry, registry
credentials (a string or a one-item list) unless the server is localhost,
builder arch, cache type, one of host/hosts/role/roles/tag/tags per
accessory, reserved labels, restart policy, env tags only at the root, alias
names, primary role present with hosts. ERB (<% %>) is not evaluated.
"""
import json
import os
import re
import sys

try:
    import yaml
except ImportError:  # fall back to an interpreter that has PyYAML
    for py in (os.environ.get("HEADROOM_VENV", os.path.expanduser("~/.cache/headroom/venv")) + "/bin/python",
               "/usr/bin/python3"):
        if os.path.exists(py) and os.path.realpath(py) != os.path.realpath(sys.executable):
            os.execv(py, [py] + sys.argv)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_KEYS = os.path.join(os.path.dirname(HERE), "data", "kamal2-keys.json")
CLI_COMMANDS = {"accessory", "app", "audit", "build", "config", "deploy", "details", "docs",
                "help", "init", "lock", "proxy", "prune", "redeploy", "registry", "remove",
                "rollback", "secrets", "server", "setup", "upgrade", "version"}
KAMAL1_HINTS = {
    "traefik": "Kamal 1's traefik: was replaced by proxy: in Kamal 2",
    "healthcheck": "Kamal 1's root healthcheck: moved to proxy/healthcheck in Kamal 2",
    "stop_wait_time": "Kamal 1's stop_wait_time: is drain_timeout/stop_timeout in Kamal 2",
}


class Checker:
    def __init__(self, tree):
        self.sections = tree["sections"]
        self.errors = []

    def err(self, ctx, msg):
        self.errors.append(f"{ctx or '(root)'}: {msg}")

    # --- type predicates (Kamal::Configuration::Validator#valid_type?) ---
    @staticmethod
    def is_type(v, t):
        if t == "string":  # stringish?: String, Symbol, Numeric, true/false
            return isinstance(v, (str, int, float))
        if t == "integer":
            return isinstance(v, int) and not isinstance(v, bool)
        if t == "float":
            return isinstance(v, float)
        if t == "boolean":
            return isinstance(v, bool)
        if t == "hash":
            return isinstance(v, dict)
        if t == "list":
            return isinstance(v, list)
        raise ValueError(t)

    def want(self, ctx, v, *types):
        if not any(self.is_type(v, t) for t in types):
            self.err(ctx, f"should be {' or '.join(types)}, got {type(v).__name__} {v!r}")
            return False
        return True

    def list_of(self, ctx, v, item):
        if self.want(ctx, v, "list"):
            for i, x in enumerate(v):
                self.want(f"{ctx}/{i}", x, item)

    def hash_of(self, ctx, v, item):
        if self.want(ctx, v, "hash"):
            for k, x in v.items():
                self.want(f"{ctx}/{k}", x, item)

    def servers_list(self, ctx, v):
        if not self.want(ctx, v, "list"):
            return
        for i, s in enumerate(v):
            c = f"{ctx}/{i}"
            if not isinstance(s, (str, dict)):
                self.err(c, f"should be a host string or {{host: tags}}, got {s!r}")
            elif isinstance(s, dict):
                if len(s) != 1:
                    self.err(c, "multiple hosts found")
                    continue
                host, tags = next(iter(s.items()))
                if isinstance(tags, list):
                    self.list_of(f"{c}/{host}", tags, "string")
                else:
                    self.want(f"{c}/{host}", tags, "string")

    # --- nodes ---
    def node(self, ctx, v, n, section):
        k = n["kind"]
        if k == "ref":
            if n.get("allow_boolean") and isinstance(v, bool):
                return
            if n.get("allow_list") and isinstance(v, list):
                return self.section(ctx, v, n["section"])
            if not isinstance(v, dict):
                self.err(ctx, f"should be a hash{' or a list' if n.get('allow_list') else ''}"
                              f"{' or a boolean' if n.get('allow_boolean') else ''}, got {type(v).__name__}")
                return
            return self.section(ctx, v, n["section"])
        if k == "scalar":
            return self.want(ctx, v, n["type"])
        if k == "list_of":
            return self.list_of(ctx, v, n["item"])
        if k == "string_or_list_of":
            return self.list_of(ctx, v, n["item"]) if isinstance(v, list) else self.want(ctx, v, n["item"])
        if k == "hash":
            return self.want(ctx, v, "hash")
        if k == "hash_of":
            return self.hash_of(ctx, v, n["value"])
        if k == "servers_list":
            return self.servers_list(ctx, v)
        if k == "secret_ref":
            if not (isinstance(v, str) or (isinstance(v, list) and len(v) == 1 and isinstance(v[0], str))):
                self.err(ctx, "should be a string or an array with one string (for secret lookup)")
            return
        if k == "ssl":
            if isinstance(v, bool):
                return
            if not isinstance(v, dict):
                self.err(ctx, f"should be a boolean or a hash, got {v!r}")
                return
            for key, x in v.items():
                if key not in n["hash_keys"]:
                    self.err(ctx, f"unknown key: {key} (documented: {', '.join(n['hash_keys'])})")
                else:
                    self.want(f"{ctx}/{key}", x, "string")
            return
        if k == "hooks_output":
            return self.hash_of(ctx, v, "string") if isinstance(v, dict) else self.want(ctx, v, "string")
        if k == "ssh_config":
            if isinstance(v, list):
                return self.list_of(ctx, v, "string")
            return self.want(ctx, v, "boolean", "string")
        if k == "paths":
            if not self.want(ctx, v, "list"):
                return
            for i, p in enumerate(v):
                c = f"{ctx}/{i}"
                if isinstance(p, dict):
                    for key, x in p.items():
                        if key not in n["hash_keys"]:
                            self.err(c, f"unknown key: {key}")
                        else:
                            self.want(f"{c}/{key}", x, "string")
                else:
                    self.want(c, p, "string")
            return
        if k == "map":
            return self.map(ctx, v, n, section)
        raise ValueError(f"unknown node kind {k}")

    def map(self, ctx, v, n, section):
        if not self.want(ctx, v, "hash"):
            return
        for key, x in v.items():
            c = f"{ctx}/{key}" if ctx else str(key)
            if n.get("extensions") and str(key).startswith("x-"):
                continue
            if key not in n["keys"]:
                hint = KAMAL1_HINTS.get(key) if section == "configuration" else None
                self.err(ctx, f"unknown key: {key}" + (f" ({hint})" if hint else ""))
                continue
            self.node(c, x, n["keys"][key], section)
        for key in n.get("required", []):
            if v.get(key) in (None, "", [], {}):
                self.err(ctx, f"missing required key: {key}")

    def section(self, ctx, v, name):
        n = self.sections[name]
        k = n["kind"]
        if k == "map":
            if n.get("also") == "servers_list" and isinstance(v, list):  # role given as a host list
                return self.servers_list(ctx, v)
            self.map(ctx, v, n, name)
            if isinstance(v, dict):
                getattr(self, "extra_" + name, lambda c, x: None)(ctx, v)
            return
        if k == "servers":
            if isinstance(v, list):
                return self.servers_list(ctx, v)
            if not self.want(ctx, v, "hash"):
                return
            for role, rv in v.items():
                if not isinstance(rv, (list, dict)):
                    self.err(f"{ctx}/{role}", f"should be a list of hosts or a hash, got {rv!r}")
                else:
                    self.section(f"{ctx}/{role}", rv, "role")
            return
        if k == "named":
            if not self.want(ctx, v, "hash"):
                return
            for nm, x in v.items():
                c = f"{ctx}/{nm}"
                pat = n.get("name_pattern")
                if pat and not re.match(pat, str(nm)):
                    self.err(c, f"invalid alias name '{nm}': only lowercase letters, digits, - and _")
                if pat and nm in CLI_COMMANDS:
                    self.err(c, f"alias '{nm}' conflicts with a built-in command")
                self.node(c, x, n["item"], name)
            return
        if k == "env":
            return self.env(ctx, v, n)
        raise ValueError(k)

    def env(self, ctx, v, n):
        if not self.want(ctx, v, "hash"):
            return
        special = set(n["special_keys"])
        if not (set(v) & special):  # simple env: NAME -> value
            return self.hash_of(ctx, v, "string")
        for key in v:
            if key not in special:
                self.err(ctx, f"unknown key: {key} (with clear/secret/tags, every variable goes under clear:)")
        if "clear" in v:
            self.hash_of(f"{ctx}/clear", v["clear"], "string")
        if "secret" in v:
            self.list_of(f"{ctx}/secret", v["secret"], "string")
        if "tags" in v:
            if not n["tags_allowed"]:
                self.err(f"{ctx}/tags", "tags are only allowed in the root env")
            elif self.want(f"{ctx}/tags", v["tags"], "hash"):
                for tag, tv in v["tags"].items():
                    self.env(f"{ctx}/tags/{tag}", tv, dict(n, tags_allowed=False))

    # --- section validators' extra rules ---
    def labels_restart(self, ctx, v):
        for key in (v.get("labels") or {}) if isinstance(v.get("labels"), dict) else {}:
            if key in ("destination", "role", "service"):
                self.err(f"{ctx}/labels/{key}", "invalid label. destination, role, and service are reserved labels")
        opts = v.get("options")
        if isinstance(opts, dict) and "restart" in opts:
            r = opts["restart"]
            if not isinstance(r, str):
                self.err(f"{ctx}/options/restart", 'should be a string. Use "no" to disable restarts')
            elif not re.fullmatch(r"no|always|unless-stopped|on-failure(?::\d+)?", r):
                self.err(f"{ctx}/options/restart", "should be no, always, unless-stopped, on-failure, or on-failure:N")

    def extra_role(self, ctx, v):
        self.labels_restart(ctx, v)

    def extra_accessory(self, ctx, v):
        keys = self.sections["accessory"]["exactly_one_of"]
        if len([k for k in keys if k in v]) != 1:
            self.err(ctx, "specify one of `host`, `hosts`, `role`, `roles`, `tag` or `tags`")
        self.labels_restart(ctx, v)

    def extra_registry(self, ctx, v):
        server = str(v.get("server") or "")
        if not re.match(self.sections["registry"]["credentials_optional_if_server_matches"], server):
            for key in ("username", "password"):
                if not v.get(key):
                    self.err(f"{ctx}/{key}", "is required")

    def extra_builder(self, ctx, v):
        if not v.get("arch"):
            self.err(ctx, "Builder arch not set")
        cache = v.get("cache")
        if isinstance(cache, dict) and cache.get("type") and cache["type"] not in ("gha", "registry"):
            self.err(f"{ctx}/cache", f"Invalid cache type: {cache['type']}")
        if v.get("local") is False and not v.get("remote"):
            self.err(ctx, "Cannot disable local builds, no remote is set")

    def extra_proxy(self, ctx, v):
        if "host" in v and "hosts" in v:
            self.err(ctx, "Specify one of 'host' or 'hosts', not both")
        if v.get("ssl") and not (v.get("host") or v.get("hosts")) and ctx == "proxy":
            self.err(ctx, "Must set a host to enable automatic SSL")

    def extra_configuration(self, ctx, v):
        if "builder" not in v:
            self.err("builder", "Builder arch not set (builder: arch: is required in Kamal 2)")
        servers = v.get("servers")
        if servers is None:
            if not v.get("accessories"):
                self.err("", "No servers or accessories specified")
            return
        primary = v.get("primary_role", "web")
        roles = {"web": servers} if isinstance(servers, list) else (servers if isinstance(servers, dict) else {})
        if primary not in roles:
            self.err("servers", f"The primary_role {primary} isn't defined")
        for name, r in roles.items():
            hosts = r if isinstance(r, list) else (r.get("hosts") if isinstance(r, dict) else None)
            if not hosts and not (isinstance(r, dict) and r.get("tags")):
                if name == primary:
                    self.err(f"servers/{name}", f"No servers specified for the {name} primary_role")
                elif not v.get("allow_empty_roles"):
                    self.err(f"servers/{name}", f"No servers specified for the {name} role. "
                                                "You can ignore this with allow_empty_roles: true")


def main(argv):
    args = [a for a in argv if not a.startswith("--keys")]
    keys = DEFAULT_KEYS
    for a in argv:
        if a.startswith("--keys="):
            keys = a.split("=", 1)[1]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    with open(keys) as f:
        tree = json.load(f)
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        print(f"fail: {path}: invalid YAML: {e}", file=sys.stderr)
        return 1
    c = Checker(tree)
    if not isinstance(doc, dict):
        c.err("", "top level should be a hash")
    else:
        c.section("", doc, tree["root"])
    for e in c.errors:
        print("fail: " + e, file=sys.stderr)
    if c.errors:
        print(f"fail: Kamal 2 would reject {path}", file=sys.stderr)
        return 1
    print(f"ok: kamal accepted {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
