"""Strict checks gunicorn itself does not do (run with the validator venv).

  gunicorn_check.py conf CONF_PY   exec the config file like gunicorn does
                                   (module "__config__"), fail on any
                                   top-level name that is not a gunicorn
                                   setting, set every value through
                                   gunicorn's validators, import worker_class.
  gunicorn_check.py cmd ARG...     parse a gunicorn command line with
                                   gunicorn's own argparser, set every value,
                                   import worker_class. Prints the app args.

Names skipped in a config file: names starting with "_", modules, and
functions/classes imported from elsewhere. A function *defined* in the file
must be a server hook name (e.g. post_fork): a misspelt hook is an error.
"""
import importlib.util
import inspect
import sys
import types

from gunicorn.config import Config


def fail(msg):
    print("fail: " + msg, file=sys.stderr)
    sys.exit(1)


def check_worker(cfg):
    uri = cfg.worker_class_str
    try:
        cls = cfg.worker_class
    except BaseException as e:  # load_class raises RuntimeError / SystemExit
        fail(f"worker_class {uri!r} cannot be imported: {e}")
    print(f"worker_class = {uri} ({cls.__module__}.{cls.__name__})")


def summary(cfg):
    for k in ("bind", "workers", "threads", "worker_connections", "timeout",
              "graceful_timeout", "keepalive", "backlog", "max_requests",
              "max_requests_jitter", "preload_app"):
        print(f"{k} = {cfg.settings[k].get()!r}")


def check_conf(path):
    cfg = Config()
    spec = importlib.util.spec_from_file_location("__config__", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["__config__"] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:
        fail(f"cannot exec {path}: {type(e).__name__}: {e}")
    unknown = []
    for name, value in vars(mod).items():
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType):
            continue
        if (inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value)) \
                and getattr(value, "__module__", None) != "__config__" and name not in cfg.settings:
            continue  # imported helper (from x import y)
        if name not in cfg.settings:
            unknown.append(name)
            continue
        try:
            cfg.set(name, value)
        except BaseException as e:
            fail(f"invalid value for {name} in {path}: {e}")
    if unknown:
        fail(f"unknown gunicorn setting(s) in {path}: {', '.join(sorted(unknown))}")
    check_worker(cfg)
    summary(cfg)


def check_cmd(argv):
    cfg = Config()
    parser = cfg.parser()
    parser.prog = "gunicorn"
    parser.print_usage = lambda *a, **k: None  # keep only the error line
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        fail(f"gunicorn's argparser rejected: {' '.join(argv)}") if e.code else sys.exit(0)
    for k, v in vars(args).items():
        if v is None or k == "args":
            continue
        try:
            cfg.set(k.lower(), v)
        except BaseException as e:
            fail(f"invalid value for {k}: {e}")
    if not args.args and not cfg.wsgi_app:
        fail("no APP_MODULE in the command line")
    check_worker(cfg)
    summary(cfg)
    if args.config:
        print(f"CONFIG {args.config}")
    for a in args.args:
        print(f"APP {a}")


def write_stub(root, spec):
    import os
    mod, _, attr = spec.partition(":")
    attr = (attr or "application").split("(")[0]
    parts = mod.split(".")
    d = root
    os.makedirs(d, exist_ok=True)
    for p in parts[:-1]:
        d = os.path.join(d, p)
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "__init__.py"), "a").close()
    with open(os.path.join(d, parts[-1] + ".py"), "w") as f:
        f.write("def %s(environ, start_response):\n"
                "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                "    return [b'ok\\n']\n" % attr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "stub":
        write_stub(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "conf":
        check_conf(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "cmd":
        check_cmd(sys.argv[2:])
    else:
        fail(__doc__)
