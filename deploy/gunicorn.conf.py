"""gunicorn settings for Inkwell: ``gunicorn -c deploy/gunicorn.conf.py wsgi:app``.

Threaded workers (gthread) behind nginx: nginx buffers each request and response in full, so a
slow or idle client ties up nginx (built for that) rather than a Python worker. With bare
sync workers and no proxy, as many idle connections as workers (eight, say) take the site down:
the slowloris attack. Every value can be overridden on the command line or through
GUNICORN_CMD_ARGS.
"""

import multiprocessing
import os

# nginx talks to gunicorn on the loopback only; never expose this port.
bind = os.environ.get("INKWELL_BIND", "127.0.0.1:8000")

worker_class = "gthread"
workers = int(os.environ.get("INKWELL_WORKERS") or multiprocessing.cpu_count() * 2 + 1)
# Each thread handles one request at a time; a thread waiting on the database or a slow
# upload does not block the rest of its worker.
threads = int(os.environ.get("INKWELL_THREADS") or 4)

# A request that takes longer than this is killed and the worker restarted.
timeout = 30
graceful_timeout = 30
# Idle keep-alive connections from nginx are closed after this many seconds.
keepalive = 5

# Restart workers now and then, so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200

# Refuse oversized request lines and headers before the app sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# nginx on the same host sets X-Forwarded-For/-Proto; the app trusts them through
# FLASK_PROXY_FIX_X_FOR=1 and FLASK_PROXY_FIX_X_PROTO=1 (see deploy/inkwell-web.service).
forwarded_allow_ips = "127.0.0.1"

accesslog = "-"
errorlog = "-"
