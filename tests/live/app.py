"""The app the live proof runs under gunicorn: each request holds one connection of a
psycopg2 ThreadedConnectionPool (sized by DB_POOL_MAX, from the rendered env file) for
`SELECT pg_sleep(DB_SLEEP)`, so its service time is the database's. Errors are answered
with HTTP 500 and the exception's class and message, as a Django/Flask app shows them."""

import os
import threading
from urllib.parse import parse_qs

import psycopg2
import psycopg2.pool

_lock = threading.Lock()
_pool = None
_pid = None


def pool():
    """One pool per worker process; connections open on first use and stay open."""
    global _pool, _pid
    with _lock:
        if _pool is None or _pid != os.getpid():
            size = int(os.environ["DB_POOL_MAX"])
            _pool = psycopg2.pool.ThreadedConnectionPool(
                0, size, os.environ["DATABASE_URL"], application_name=os.environ.get("APP_NAME", "web")
            )
            # Keep every connection once opened (psycopg2 closes returned connections
            # beyond minconn), but open them on demand, as a persistent pool does: the
            # connection past the database's limit fails when load first needs it.
            _pool.minconn = size
            _pid = os.getpid()
        return _pool


def answer(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/ping":
        return answer(start_response, "200 OK", "pong\n")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    seconds = float(query.get("sleep", [os.environ.get("DB_SLEEP", "0.4")])[0])
    try:
        p = pool()
        conn = p.getconn()
    except Exception as e:  # PoolError when the pool is exhausted, OperationalError at login
        return answer(start_response, "500 Internal Server Error", f"{type(e).__name__}: {e}".strip() + "\n")
    broken = False
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(%s)", (seconds,))
        return answer(start_response, "200 OK", "ok\n")
    except Exception as e:
        broken = True
        return answer(start_response, "500 Internal Server Error", f"{type(e).__name__}: {e}".strip() + "\n")
    finally:
        p.putconn(conn, close=broken)
