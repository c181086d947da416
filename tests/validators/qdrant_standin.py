#!/usr/bin/env python3
"""A stand-in for the parts of Qdrant's REST API the collection script uses, for tests
(no Qdrant server is installable here). Serves on 127.0.0.1:PORT until killed:

  GET  /cluster               {"result": {"status": "enabled"|"disabled", "peers": {...}}}
  GET  /collections/NAME      404 when missing, else {"result": {"config": {...}}}
  PUT  /collections/NAME      checks the body the way Qdrant 1.19's API types do
                              (vectors.size 1..65536, distance, shard_number,
                              replication_factor, write_consistency_factor >= 1,
                              quantization_config one of scalar/product/binary);
                              400 on a bad body, 409 when it exists
  GET  /readyz                200, or 503 while READY_FILE does not exist
  POST /standin/peers/N       sets the number of peers the cluster reports
  POST /standin/set/NAME      replaces a stored collection's params (JSON body merged)

Every PUT is appended to LOG (one JSON line) so a test can count creations.
Usage: qdrant_standin.py PORT PEERS LOG [READY_FILE]
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, PEERS, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
READY_FILE = sys.argv[4] if len(sys.argv) > 4 else None
STATE = {"peers": PEERS, "collections": {}}
DISTANCES = {"Cosine", "Euclid", "Dot", "Manhattan"}
COMPRESSIONS = {"x4", "x8", "x16", "x32", "x64"}


def body_problems(body):
    problems = []
    vectors = body.get("vectors")
    if not isinstance(vectors, dict):
        return ["vectors: expected an object"]
    size = vectors.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 65536:
        problems.append(f"vectors.size: {size!r} is not an integer in 1..65536")
    if vectors.get("distance") not in DISTANCES:
        problems.append(f"vectors.distance: {vectors.get('distance')!r} is not one of {sorted(DISTANCES)}")
    if "on_disk" in vectors and not isinstance(vectors["on_disk"], bool):
        problems.append("vectors.on_disk: expected a boolean")
    extra = set(vectors) - {"size", "distance", "on_disk", "hnsw_config", "quantization_config", "datatype", "multivector_config", "memory"}
    if extra:
        problems.append(f"vectors: unknown fields {sorted(extra)}")
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        value = body.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{key}: {value!r} is not an integer >= 1")
    quantization = body.get("quantization_config")
    if quantization is not None:
        if not isinstance(quantization, dict) or len(quantization) != 1:
            problems.append("quantization_config: expected one of scalar, product, binary")
        else:
            method, config = next(iter(quantization.items()))
            if method == "scalar" and config.get("type") != "int8":
                problems.append("quantization_config.scalar.type: expected int8")
            elif method == "product" and config.get("compression") not in COMPRESSIONS:
                problems.append("quantization_config.product.compression: expected x4..x64")
            elif method not in ("scalar", "product", "binary"):
                problems.append(f"quantization_config: unknown method {method!r}")
            if "always_ram" in config and not isinstance(config["always_ram"], bool):
                problems.append("always_ram: expected a boolean")
    return problems


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_GET(self):
        if self.path == "/readyz":
            ready = READY_FILE is None or os.path.exists(READY_FILE)
            self.send_response(200 if ready else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/cluster":
            peers = {str(i): {"uri": f"http://node-{i}:6335/"} for i in range(1, STATE["peers"] + 1)}
            status = "enabled" if STATE["peers"] > 1 else "disabled"
            self.answer(200, {"result": {"status": status, "peers": peers} if status == "enabled" else {"status": status}})
        elif self.path.startswith("/collections/"):
            name = self.path.split("/", 2)[2]
            found = STATE["collections"].get(name)
            if found is None:
                self.answer(404, {"status": {"error": f"Not found: Collection `{name}` doesn't exist!"}})
            else:
                self.answer(200, {"result": {"status": "green", "config": found}})
        else:
            self.answer(404, {"status": {"error": "not found"}})

    def do_PUT(self):
        name = self.path.split("/", 2)[2] if self.path.startswith("/collections/") else None
        body = self.read_body()
        with open(LOG, "a") as log:
            log.write(json.dumps({"name": name, "body": body}) + "\n")
        if name is None:
            return self.answer(404, {"status": {"error": "not found"}})
        problems = body_problems(body if isinstance(body, dict) else {})
        if problems:
            return self.answer(400, {"status": {"error": "; ".join(problems)}})
        if name in STATE["collections"]:
            return self.answer(409, {"status": {"error": f"Collection `{name}` already exists!"}})
        params = {k: body[k] for k in ("vectors", "shard_number", "replication_factor", "write_consistency_factor") if k in body}
        params.setdefault("shard_number", 1)
        params.setdefault("replication_factor", 1)
        params.setdefault("write_consistency_factor", 1)
        params["on_disk_payload"] = True
        STATE["collections"][name] = {"params": params, "quantization_config": body.get("quantization_config")}
        self.answer(200, {"result": True, "status": "ok"})

    def do_POST(self):
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["standin", "peers"]:
            STATE["peers"] = int(parts[2])
            return self.answer(200, {"result": True})
        if parts[:2] == ["standin", "set"] and parts[2] in STATE["collections"]:
            STATE["collections"][parts[2]]["params"].update(self.read_body())
            return self.answer(200, {"result": True})
        self.answer(404, {"status": {"error": "not found"}})


HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
