"""Two Inkwell app hosts behind nginx, on one PostgreSQL and one Redis, as README's deployment
section describes a larger site::

                                       ┌──► host A: gunicorn wsgi:app on 127.0.0.1:<a> ──┐
    browser ──► nginx on 127.0.0.1:<n> ┤    (round robin)                                ├──► PostgreSQL
                                       └──► host B: gunicorn wsgi:app on 127.0.0.1:<b> ──┘    Redis

Each host is its own gunicorn (``deploy/gunicorn.conf.py``: gthread workers) with its own
instance folder, so the hosts share nothing on disk: only ``DATABASE_URL``, ``REDIS_URL``
(rate limits, the cache and the job queue) and ``SECRET_KEY`` (signed session cookies). Both
trust one proxy hop (``PROXY_FIX_X_FOR``/``_X_PROTO``), as behind the nginx of
``deploy/nginx.conf``, whose proxy settings the config written here repeats; it adds an
``X-Upstream`` header naming the host that answered.

:class:`Browser` is a small HTTP client with its own cookie jar that talks to any of the three
addresses, from a loopback address of its own (127.x.y.z), so each browser is a different
client to the rate limits whether it goes through nginx or straight to a host.
"""

from __future__ import annotations

import copy
import http.client
import http.cookiejar
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import redis

from tests.conftest import PASSWORD
from tests.deploy.conftest import free_port

REPOSITORY = Path(__file__).resolve().parents[2]

#: Debian's nginx lives in /usr/sbin, which is not on every user's PATH.
NGINX: str | None = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
)

#: The job queue's keys in Redis (Huey's RedisStorage for the queue named "inkwell", blog/jobs.py).
JOB_QUEUE_KEY = "huey.redis.inkwell"
JOB_SCHEDULE_KEY = "huey.schedule.inkwell"

#: Variables of the caller's environment that would change the hosts' settings.
_DEPLOYMENT_VARIABLES = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URL",
    "SECRET_KEY",
    "REDIS_URL",
    "SITE_URL",
    "GUNICORN_CMD_ARGS",
)


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


# --- server processes --------------------------------------------------------------------------


@dataclass
class Server:
    """A server process started by a test, its output going to ``log``."""

    name: str
    base: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as nginx names an upstream in ``$upstream_addr``."""
        return self.base.removeprefix("http://")

    def output(self, start: int = 0) -> str:
        """What the server wrote from byte ``start`` of its log on."""
        with open(self.log, "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def wait_until_ready(self, path: str, timeout: float = 60.0) -> None:
        """Poll ``path`` until it answers 200; fail with the server's output if the process
        ends or the time runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:  # up, but not ready (a 502 or a 503)
                error.close()
            except OSError:  # refused while starting
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if self.process.poll() is not None else f"not ready after {timeout:.0f} s"
                raise RuntimeError(f"{self.name} {state}; its output:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Ask the server to stop (SIGTERM: a graceful stop), kill it if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_server(name: str, argv: list[str], env: Mapping[str, str], log: Path, port: int) -> Server:
    """Start ``argv`` (serving on 127.0.0.1:``port``) with its output in ``log``; not yet ready."""
    # Appended to: nginx writes its own logs to the same file. The child keeps its copy of the
    # file descriptor; this process needs none.
    with open(log, "ab") as output:
        process = subprocess.Popen(
            argv, cwd=REPOSITORY, env=dict(env), stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    return Server(name, f"http://127.0.0.1:{port}", process, log)


def host_environment(
    *,
    database_url: str,
    redis_url: str,
    secret_key: str,
    site_url: str,
    instance: Path,
    settings: Mapping[str, Any],
) -> dict[str, str]:
    """The environment of one app host: the deployment variables of README's "Deployment", and
    each of ``settings`` as ``FLASK_<NAME>`` (JSON, as the app parses them). Whatever of these
    the caller's own environment sets is left out, so the hosts run exactly these settings."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLASK_", "INKWELL_")) and name not in _DEPLOYMENT_VARIABLES
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secret_key,
        SITE_URL=site_url,
        INKWELL_INSTANCE_PATH=str(instance),
    )
    env.update({f"FLASK_{name}": json.dumps(value) for name, value in settings.items()})
    return env


def gunicorn_command(port: int) -> list[str]:
    """The production gunicorn settings (deploy/gunicorn.conf.py), smaller: 2 workers of 2
    threads, and a short graceful stop for the tests' teardown."""
    return [
        sys.executable, "-m", "gunicorn", "-c", str(REPOSITORY / "deploy" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2",
        "--graceful-timeout", "5", "wsgi:app",
    ]  # fmt: skip


NGINX_CONF = """\
# Written by tests/deploy/hosts.py: deploy/nginx.conf's proxying, in front of two app hosts,
# with every file it writes under {root}.
{user}
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx.log info;

events {{
    worker_connections 256;
}}

http {{
    log_format upstream '$remote_addr "$request" $status from $upstream_addr';
    access_log {root}/nginx.log upstream;
    client_body_temp_path {root}/client-body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;

    upstream inkwell {{
        # Round robin between the two hosts.
        server {a} fail_timeout=0;
        server {b} fail_timeout=0;
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;

        location / {{
            proxy_pass http://inkwell;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # One proxy hop: the hosts run with PROXY_FIX_X_FOR=1 and PROXY_FIX_X_PROTO=1.
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering on;
            proxy_buffering on;
            proxy_connect_timeout 5s;
            proxy_read_timeout 35s;
            # Which host answered, for the tests.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_config(root: Path, port: int, upstreams: tuple[Server, Server]) -> str:
    # Started as root, nginx would run its worker as "nobody", which cannot enter the test's
    # private temporary folder (its proxy buffers); as anyone else it runs as that user.
    user = "user root;" if os.geteuid() == 0 else ""
    a, b = (server.address for server in upstreams)
    return NGINX_CONF.format(root=root, port=port, a=a, b=b, user=user)


# --- the deployment ------------------------------------------------------------------------------


@dataclass
class TwoHosts:
    """The running deployment: ``a`` and ``b`` (the app hosts, reached directly), ``nginx``
    (in front of both), and the Redis they share."""

    a: Server
    b: Server
    nginx: Server
    redis_url: str
    #: Prefix of this deployment's rate-limit and cache keys in Redis.
    prefix: str

    @property
    def servers(self) -> tuple[Server, Server, Server]:
        return (self.a, self.b, self.nginx)

    def host_at(self, upstream: str | None) -> str:
        """``"A"`` or ``"B"``: which host nginx's ``X-Upstream`` header names."""
        names = {self.a.address: "A", self.b.address: "B"}
        assert upstream in names, f"nginx answered from {upstream!r}, not from {list(names)}"
        return names[upstream]

    def log_marks(self) -> dict[str, int]:
        return {server.name: server.log_size() for server in self.servers}

    def logs_since(self, marks: Mapping[str, int]) -> str:
        """What each server wrote since ``marks`` (from :meth:`log_marks`)."""
        return "\n".join(
            f"--- {server.name} ({server.log}) ---\n{server.output(marks.get(server.name, 0))}"
            for server in self.servers
        )

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)

    def queued_jobs(self) -> int:
        """How many jobs wait in the one job queue (ready and scheduled)."""
        client = self.redis()
        try:
            return int(client.llen(JOB_QUEUE_KEY)) + int(client.zcard(JOB_SCHEDULE_KEY))
        finally:
            client.close()


@contextmanager
def two_hosts_behind_nginx(
    root: Path, *, database_url: str, redis_url: str, settings: Mapping[str, Any] | None = None
) -> Iterator[TwoHosts]:
    """Start host A, host B and nginx in front of them; stop them all on the way out and
    remove what they left in Redis. ``settings`` are given to both hosts."""
    assert NGINX is not None, "nginx is not installed"
    prefix = f"inkwell-two-hosts-{uuid.uuid4().hex[:12]}"
    ports = {"a": free_port(), "b": free_port(), "nginx": free_port()}
    site_url = f"http://127.0.0.1:{ports['nginx']}"
    common: dict[str, Any] = {
        # Plain http on the loopback; in production nginx serves https and cookies stay Secure.
        "SESSION_COOKIE_SECURE": False,
        "BCRYPT_ROUNDS": 4,  # the tests' members are created with this cost
        "PROXY_FIX_X_FOR": 1,
        "PROXY_FIX_X_PROTO": 1,
        # This deployment's own keys in the shared Redis, removed at the end.
        "RATELIMIT_KEY_PREFIX": prefix,
        "CACHE_KEY_PREFIX": f"{prefix}:",
        **(settings or {}),
    }
    secret_key = f"two-hosts-secret-{uuid.uuid4().hex}"  # the same on both hosts
    jobs_before = _job_queue(redis_url)

    with ExitStack() as stack:
        stack.callback(_forget_redis_keys, redis_url, prefix, jobs_before)
        hosts = []
        for name in ("a", "b"):
            folder = root / f"host-{name}"
            folder.mkdir()
            env = host_environment(
                database_url=database_url, redis_url=redis_url, secret_key=secret_key,
                site_url=site_url, instance=folder / "instance", settings=common,
            )  # fmt: skip
            host = start_server(f"host {name.upper()}", gunicorn_command(ports[name]), env,
                                folder / "gunicorn.log", ports[name])  # fmt: skip
            stack.callback(host.stop)
            hosts.append(host)
        a, b = hosts
        for host in hosts:  # started together, waited for in turn
            host.wait_until_ready("/healthz")

        conf = root / "nginx.conf"
        conf.write_text(nginx_config(root, ports["nginx"], (a, b)))
        # -e: the error log from the start, before the configuration (and its error_log) is read.
        nginx = start_server(
            "nginx", [NGINX, "-p", str(root), "-c", str(conf), "-e", str(root / "nginx.log")],
            os.environ, root / "nginx.log", ports["nginx"],
        )  # fmt: skip
        stack.callback(nginx.stop)
        nginx.wait_until_ready("/healthz", timeout=20)
        yield TwoHosts(a, b, nginx, redis_url, prefix)


def _job_queue(redis_url: str) -> tuple[set[Any], set[Any]]:
    """The entries of the job queue and of its schedule (of delayed jobs)."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        return set(client.lrange(JOB_QUEUE_KEY, 0, -1)), set(client.zrange(JOB_SCHEDULE_KEY, 0, -1))
    finally:
        client.close()


def forget_keys(redis_url: str, pattern: str) -> None:
    """Delete the keys matching ``pattern`` (a test's own prefix) from the Redis at ``redis_url``."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _forget_redis_keys(redis_url: str, prefix: str, jobs_before: tuple[set[Any], set[Any]]) -> None:
    """Delete this deployment's rate-limit counters and cache entries, and the jobs its hosts
    queued (no worker runs here to take them; the rows they name are deleted with the data)."""
    queued, scheduled = _job_queue(redis_url)
    forget_keys(redis_url, f"*{prefix}*")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        for entry in queued - jobs_before[0]:
            client.lrem(JOB_QUEUE_KEY, 0, entry)
        for entry in scheduled - jobs_before[1]:
            client.zrem(JOB_SCHEDULE_KEY, entry)
    finally:
        client.close()


# --- a browser -----------------------------------------------------------------------------------


@dataclass
class Page:
    """One response, as the browser got it (redirects are not followed)."""

    method: str
    url: str
    status: int
    headers: Message
    text: str

    @property
    def location(self) -> str:
        """The path a redirect points to."""
        return urllib.parse.urlsplit(self.headers.get("Location", "")).path

    @property
    def upstream(self) -> str | None:
        """The host that answered through nginx (its ``X-Upstream`` header)."""
        return self.headers.get("X-Upstream")

    def __repr__(self) -> str:
        return f"<Page {self.method} {self.url} {self.status}>"

    def __str__(self) -> str:
        """For assertion messages: the request, the status, the headers and the start of the page."""
        body = re.sub(r"\s+", " ", self.text)
        return f"{self.method} {self.url} -> {self.status} {dict(self.headers)}\n{body[:1500]}"


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the page's forms (as WTForms renders them), by name: the CSRF
    token, the checkout token, the total the customer saw."""
    return dict(re.findall(r'name="([^"]+)" type="hidden" value="([^"]*)"', html))


class _FromAddress(urllib.request.HTTPHandler):
    """Open every connection from one local address."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(http.client.HTTPConnection, req, source_address=(self.address, 0))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def new_client_address() -> str:
    """A loopback address no other browser of this run is likely to have (127.0.0.0/8 is all
    local on Linux)."""
    return f"127.{random.randrange(1, 255)}.{random.randrange(0, 256)}.{random.randrange(1, 255)}"


class Browser:
    """A browser with its own cookie jar and client address. The jar is keyed by host name, not
    port, as a real browser's: a cookie set by host A is sent to host B and through nginx, as
    it would be to any host behind a load balancer."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address or new_client_address()
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            _FromAddress(self.address), urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect()
        )

    def copy(self) -> Browser:
        """Another browser on the same address holding copies of this one's cookies."""
        other = Browser(self.address)
        for cookie in self.jar:
            other.jar.set_cookie(copy.copy(cookie))
        return other

    def get(self, url: str) -> Page:
        return self._open("GET", url, None)

    def post(self, url: str, data: Mapping[str, Any]) -> Page:
        return self._open("POST", url, urllib.parse.urlencode(data).encode())

    def _open(self, method: str, url: str, body: bytes | None) -> Page:
        request = urllib.request.Request(url, body, method=method)
        try:
            response = self.opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:  # 3xx (not followed), 4xx, 5xx
            response = error
        with response:
            return Page(method, url, response.status, response.headers, response.read().decode())

    def form(self, url: str) -> dict[str, str]:
        """The hidden fields of the page at ``url`` (its CSRF token among them)."""
        page = self.get(url)
        assert page.status == 200, page
        fields = hidden_fields(page.text)
        assert "csrf_token" in fields, f"no CSRF token on {url}\n{page}"
        return fields

    def login(self, base: str, username: str, password: str = PASSWORD) -> Page:
        """Log in through ``base``'s login form (read from and posted to ``base``)."""
        token = self.form(base + "/auth/login")["csrf_token"]
        return self.post(
            base + "/auth/login", {"csrf_token": token, "username": username, "password": password}
        )

    def logout(self, base: str) -> Page:
        """Log out with the button every page has for a member."""
        token = self.form(base + "/")["csrf_token"]
        return self.post(base + "/auth/logout", {"csrf_token": token})
