#!/usr/bin/env python3
"""Generate tests/data/kamal2-keys.json from Kamal 2.12's configuration docs.

Usage: gen_kamal_keys.py [DOCS_DIR] [OUT_JSON]
  DOCS_DIR defaults to ../shared/reference/kamal-2.12-config-docs beside the
  repo (shared/ next to main/), OUT_JSON to tests/data/kamal2-keys.json.

Kamal validates a deploy.yml against these very files: each doc is loaded as
YAML (a repeated key keeps its LAST value, as Ruby's Psych does) and the
config is compared with the example, key by key
(Kamal::Configuration::Validator#validate_against_example!). This script
turns each doc into a key tree with the same rules, so kamal.py can check a
deploy.yml without Ruby, Kamal or the docs:

  example value            -> accepted value (node "kind")
  "..."                    -> the section documented in another file ("ref"):
                              a hash (servers: also a list; proxy: also a boolean)
  key hosts                -> list of hosts, each a string or {host: tag|[tags]}
  key ssl                  -> true/false or a hash (certificate_pem, private_key_pem)
  key hooks_output         -> a string, or a hash of hook -> string
  list, key arch           -> a string or a list of strings
  list, key config (ssh)   -> true/false, a string or a list of strings
  list, key files/directories -> list of "local:remote[:opts]" strings or
                              {local, remote, mode, owner, options} hashes
  other list               -> list of the first item's type
  hash, key options/args/additional_contexts -> any hash
  hash, key labels         -> hash of arbitrary keys to the first value's type
  other hash               -> closed map, recursed
  scalar                   -> that type; "string" also accepts numbers and
                              booleans (Kamal's stringish?), "integer" does not
                              accept strings, "boolean" only true/false.

Sections with their own validator in Kamal are marked with "kind" values
kamal.py knows: env (simple hash of strings, or clear/secret/tags; tags only
at the root env), servers (list of hosts, or role name -> role), named
(accessories / aliases: arbitrary names), and registry username/password
("secret_ref": a string or a one-item list naming a secret).
"""
import json
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_DOCS = os.path.join(os.path.dirname(REPO), "shared", "reference", "kamal-2.12-config-docs")
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "kamal2-keys.json")

# Which doc a "..." placeholder refers to, by key (the docs' comments say
# "see kamal docs <name>"). Under a role or an accessory, env has no tags.
REFS = {
    "registry": "registry", "servers": "servers", "env": "env", "ssh": "ssh",
    "builder": "builder", "accessories": "accessories", "proxy": "proxy",
    "sshkit": "sshkit", "boot": "boot", "logging": "logging", "output": "output",
    "aliases": "aliases",
}


def load(docs, name):
    with open(os.path.join(docs, name + ".yml")) as f:
        return yaml.safe_load(f)


def scalar_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "hash"
    if isinstance(v, list):
        return "list"
    raise ValueError(f"unexpected example value {v!r}")


def node_for(key, example, section):
    if example == "...":
        ref = REFS[key]
        n = {"kind": "ref", "section": ref}
        if ref == "env" and section != "configuration":
            n["section"] = "env_nested"
        if key == "proxy":
            n["allow_boolean"] = True  # `proxy: true/false` (validator special case)
        if key == "servers":
            n["allow_list"] = True
        return n
    if key == "ssl":
        return {"kind": "ssl", "doc_example": example,
                "hash_keys": sorted(example) if isinstance(example, dict) else [],
                "note": "true/false, or a hash mapping certificate_pem/private_key_pem to secret names"}
    if key == "hooks_output":
        return {"kind": "hooks_output", "note": "a string (:quiet/:verbose) or a hash of hook name -> string"}
    if key == "hosts":
        return {"kind": "servers_list"}
    if isinstance(example, list):
        item = scalar_type(example[0])
        if key == "arch":
            return {"kind": "string_or_list_of", "item": item}
        if key == "config":
            return {"kind": "ssh_config", "note": "true/false, a path or a list of paths"}
        if key in ("files", "directories"):
            return {"kind": "paths", "hash_keys": ["local", "remote", "mode", "owner", "options"]}
        return {"kind": "list_of", "item": item}
    if isinstance(example, dict):
        if key in ("options", "args", "additional_contexts"):
            return {"kind": "hash"}
        if key == "labels":
            return {"kind": "hash_of", "value": scalar_type(next(iter(example.values())))}
        return map_node(example, section)
    return {"kind": "scalar", "type": scalar_type(example)}


def map_node(example, section, extensions=False):
    return {
        "kind": "map",
        "extensions": extensions,
        "keys": {k: node_for(k, v, section) for k, v in example.items()},
    }


def main():
    docs = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DOCS
    out = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT
    sections = {}

    top = load(docs, "configuration")
    sections["configuration"] = map_node(top, "configuration", extensions=True)
    sections["configuration"]["required"] = ["service", "image", "registry"]

    reg = load(docs, "registry")["registry"]  # last example wins
    reg_node = map_node({k: v for k, v in reg.items() if k not in ("username", "password")}, "registry")
    reg_node["keys"]["username"] = {"kind": "secret_ref"}
    reg_node["keys"]["password"] = {"kind": "secret_ref"}
    reg_node["credentials_optional_if_server_matches"] = "^localhost[:$]"
    sections["registry"] = reg_node

    role = load(docs, "role")["servers"]["workers"]
    sections["role"] = map_node(role, "role")
    sections["role"]["also"] = "servers_list"
    sections["servers"] = {"kind": "servers", "list": {"kind": "servers_list"},
                           "role": {"kind": "ref", "section": "role"}}

    acc = load(docs, "accessory")["accessories"]["mysql"]
    sections["accessory"] = map_node(acc, "accessory")
    sections["accessory"]["exactly_one_of"] = ["host", "hosts", "role", "roles", "tag", "tags"]
    sections["accessories"] = {"kind": "named", "item": {"kind": "ref", "section": "accessory"}}

    aliases = load(docs, "alias")["aliases"]
    sections["aliases"] = {"kind": "named", "name_pattern": "^[a-z0-9_-]+$",
                           "item": {"kind": "scalar", "type": scalar_type(aliases["uname"])}}

    env_all = load(docs, "env")["env"]  # the last example: clear/secret/tags
    sections["env"] = {"kind": "env", "tags_allowed": True,
                       "special_keys": sorted(env_all.keys()),
                       "clear": {"kind": "hash_of", "value": "string"},
                       "secret": {"kind": "list_of", "item": "string"}}
    sections["env_nested"] = dict(sections["env"], tags_allowed=False)

    for name in ("proxy", "ssh", "sshkit", "boot", "builder", "logging", "output"):
        sections[name] = map_node(load(docs, name)[name], name)
    # Kamal's Sshkit validator also accepts default_env (hash of strings).
    sections["sshkit"]["keys"]["default_env"] = {"kind": "hash_of", "value": "string",
                                                 "note": "accepted by Kamal's Sshkit validator"}
    sections["builder"]["required"] = ["arch"]
    sections["builder"]["enums"] = {"cache.type": ["gha", "registry"]}
    sections["proxy"]["at_most_one_of"] = ["host", "hosts"]

    data = {
        "generated_by": "tests/validators/gen_kamal_keys.py",
        "source": "Kamal 2.12 configuration docs (lib/kamal/configuration/docs/*.yml)",
        "root": "configuration",
        "sections": sections,
    }
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
