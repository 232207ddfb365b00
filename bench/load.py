"""HTTP for the benchmarks: gunicorn servers, a load generator, and a browser-like client.

The load generator is plain Python (threads and blocking sockets), so ``make bench`` needs
nothing beyond the virtualenv. Each request is one connection (``Connection: close``), which
is all gunicorn's sync workers offer anyway: they answer one request per connection. Its own
CPU is measured and printed beside every result, because on a two-core machine every cycle
it spends is a cycle the server does not get; ratios taken side by side (the app against a
floor, driven by the same generator) cancel most of that out.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import os
import re
import signal
import socket
import statistics
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

HOST = "127.0.0.1"
GUNICORN = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "gunicorn"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    """A gunicorn running one WSGI app with ``workers`` sync workers on a free port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port


@functools.cache
def _no_control_socket() -> list[str]:
    """gunicorn 25 and later open a control socket, by default one path for every server on
    the machine: the benchmarks' four at once (and the test suite's) would take it from each
    other. Older ones have no such option."""
    help_text = subprocess.run([str(GUNICORN), "--help"], capture_output=True, text=True, check=False).stdout
    return ["--no-control-socket"] if "--no-control-socket" in help_text else []


@contextmanager
def gunicorn(name: str, app: str, env: dict[str, str], log: Path, *, workers: int = 2,
             probe: str = "/") -> Iterator[Server]:
    """Serve ``app`` (``module:callable``) under gunicorn until the block ends; its output goes
    to ``log``. Ready once ``probe`` answers; fails loudly (with the log) if it never does."""
    port = free_port()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(GUNICORN), "--workers", str(workers), "--worker-class", "sync", "--bind", f"{HOST}:{port}",
             "--timeout", "120", "--graceful-timeout", "5", *_no_control_socket(), app],
            cwd=Path(__file__).resolve().parent.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name}: gunicorn exited ({process.returncode}):\n"
                                 f"{log.read_text()[-3000:]}")
            try:
                status, _, _ = request(server.address, "GET", probe)
                if status < 500:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: no answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield server
    finally:
        # Only the process started here, by its id: the master stops its workers.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request(address: tuple[str, int], method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection: (status, headers, body)."""
    connection = http.client.HTTPConnection(*address, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


# --- the load generator ------------------------------------------------------------------------


def raw_get(path: str, cookie: str | None = None) -> bytes:
    """The bytes of a GET that asks the server to close the connection after answering."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}", "User-Agent: inkwell-bench", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
#: Close with a reset rather than a FIN: no socket is left in TIME_WAIT on either side. A run
#: opens some 100,000 connections in a few minutes, and as many TIME_WAIT sockets (60 s each)
#: crowd the 28,000 local ports until a new connection's SYN meets an old one's remains and
#: waits a second for its retry: a stall that looks like the server's in an open-loop p99.
_RESET = struct.pack("ii", 1, 0)


def fetch(address: tuple[str, int], raw: bytes) -> int:
    """Send ``raw`` on a new connection and read the whole answer (by its Content-Length, or
    to the end); its status, or 0 for an answer cut short or not HTTP."""
    with socket.create_connection(address) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        sock.sendall(raw)
        answer = b""
        wanted = -1  # the answer's whole size, once its head is in
        while wanted < 0 or len(answer) < wanted:
            data = sock.recv(262_144)
            if not data:
                break
            answer += data
            if wanted < 0:
                head_end = answer.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = _LENGTH.search(answer, 0, head_end + 2)
                    wanted = head_end + 4 + int(length.group(1)) if length else 1 << 62
    if not answer.startswith(b"HTTP/1.") or (0 <= wanted < 1 << 62 and len(answer) < wanted):
        return 0
    return int(answer[9:12])


@dataclass
class LoadResult:
    """What one load run did: requests completed, their statuses, latencies (seconds), and
    the generator's own CPU."""

    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    #: Open loop: how late the generator sent requests behind the schedule (p99, seconds),
    #: and the p99 latency counted from the moment each was sent (the server's part alone).
    send_lag_p99: float = 0.0
    sent_p99: float = 0.0

    @property
    def completed(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return set(self.statuses) <= {200}

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def client_share(self) -> float:
        """The generator's CPU as a share of one core."""
        return self.client_cpu / self.seconds if self.seconds else 0.0


def closed_loop(address: tuple[str, int], raw: bytes, *, concurrency: int, seconds: float,
                warmup: float = 0.3) -> LoadResult:
    """``concurrency`` clients each sending the next request as soon as the last is answered,
    for ``seconds`` (after ``warmup`` seconds not counted): the most the server can do."""
    if warmup:
        closed_loop(address, raw, concurrency=concurrency, seconds=warmup, warmup=0)
    results: list[tuple[list[int], list[float]]] = []
    start = time.perf_counter()
    deadline = start + seconds

    def client() -> None:
        statuses: list[int] = []
        latencies: list[float] = []
        results.append((statuses, latencies))
        now = time.perf_counter()
        while now < deadline:
            status = fetch(address, raw)
            done = time.perf_counter()
            statuses.append(status)
            latencies.append(done - now)
            now = done

    cpu = time.process_time()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    result = LoadResult(elapsed, client_cpu=time.process_time() - cpu)
    for statuses, latencies in results:
        result.statuses.update(statuses)
        result.latencies.extend(latencies)
    return result


def open_loop(address: tuple[str, int], raw: bytes, *, rate: float, seconds: float,
              threads: int = 48) -> LoadResult:
    """Requests at a constant ``rate`` on a fixed schedule, whatever the answers do (an open
    loop, as real visitors arrive). A request's latency counts from when it was due, not
    from when a free thread got round to sending it, so a server that falls behind shows
    its queue in the latencies rather than hiding it (no "coordinated omission")."""
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    schedule = itertools.count()  # next() on a count is atomic under the GIL
    statuses: list[int] = []
    latencies: list[float] = []
    lags: list[float] = []
    served: list[float] = []
    lock = threading.Lock()

    def sender() -> None:
        while True:
            index = next(schedule)
            if index >= total:
                return
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            status = fetch(address, raw)
            done = time.perf_counter()
            with lock:
                statuses.append(status)
                latencies.append(done - due)
                lags.append(sent - due)
                served.append(done - sent)

    cpu = time.process_time()
    pool = [threading.Thread(target=sender) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    result = LoadResult(elapsed, Counter(statuses), latencies, time.process_time() - cpu)
    lags.sort()
    served.sort()
    result.send_lag_p99 = lags[int(0.99 * (len(lags) - 1))] if lags else 0.0
    result.sent_p99 = served[int(0.99 * (len(served) - 1))] if served else 0.0
    return result


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """(median, lowest, highest)."""
    return statistics.median(values), min(values), max(values)


# --- a browser: cookies and forms ------------------------------------------------------------


class _Inputs(HTMLParser):
    """The inputs of the form whose action is ``action`` (name -> value; radios: the first,
    or the checked one)."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.values: dict[str, str] = {}
        self.checked: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.inside = found.get("action") == self.action
        elif tag == "input" and self.inside and found.get("name"):
            name = found["name"]
            if found.get("type") in ("radio", "checkbox"):
                if name in self.checked:
                    return
                if "checked" in found:
                    self.checked.add(name)
                elif name in self.values:
                    return
            self.values[name] = found.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_inputs(html: str, action: str) -> dict[str, str]:
    """The named inputs of the form posting to ``action`` in ``html``."""
    parser = _Inputs(action)
    parser.feed(html)
    return parser.values


class Browser:
    """One visitor: its own cookies, one request per connection."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.cookies: dict[str, str] = {}

    def _send(self, method: str, path: str, body: bytes | None = None,
              content_type: str | None = None) -> tuple[int, dict[str, str], str]:
        headers = {"User-Agent": "inkwell-bench"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        connection = http.client.HTTPConnection(*self.address, timeout=120)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            for value in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    if morsel["expires"] and "1970" in morsel["expires"] or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return response.status, {k.lower(): v for k, v in response.getheaders()}, \
                data.decode("utf-8", "replace")
        finally:
            connection.close()

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return self._send("GET", path)

    def post(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return self._send("POST", path, urlencode(fields).encode(), "application/x-www-form-urlencoded")

    def log_in(self, username: str, password: str) -> None:
        """Log in through the real form; fails loudly if the site does not let us in."""
        status, _, html = self.get("/auth/login")
        fields = form_inputs(html, "/auth/login")
        fields.update(username=username, password=password)
        fields.pop("remember", None)
        status, _, html = self.post("/auth/login", fields)
        if status not in (302, 303):
            raise SystemExit(f"logging in as {username} failed: {status}\n{html[:2000]}")


def process_cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --- the machine itself -------------------------------------------------------------------------


def _spin(seconds: float, window: float, out: Any) -> None:
    """Count fixed pieces of arithmetic done in each ``window`` for ``seconds``."""
    counts: list[int] = []
    end = time.perf_counter() + seconds
    while (started := time.perf_counter()) < end:
        done, stop = 0, started + window
        while time.perf_counter() < stop:
            total = 0
            for number in range(1000):
                total += number
            done += 1
        counts.append(done)
    out.put(counts)


@dataclass
class Steadiness:
    """How steadily the machine delivers CPU: one busy process per core, doing nothing but
    arithmetic (no I/O, no system calls, no app), counted in windows of 100 ms."""

    windows: int
    #: The share of windows in which a process got less than 70% of its median work done.
    below_70: float
    #: The slowest window, as a share of the median.
    slowest: float


def steadiness(seconds: float = 10.0, window: float = 0.1) -> Steadiness:
    """Measure :class:`Steadiness` for ``seconds`` on every core at once.

    A server at 70% of its highest rate has 30% to spare: whenever the machine delivers less
    than 70% of its usual speed for a while, requests queue whatever the server does, so this
    says how far an open-loop p99 on this machine can be the server's doing at all."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")  # not a fork of the bench's threads and heap
    queue: Any = spawn.Queue()
    spinners = [spawn.Process(target=_spin, args=(seconds, window, queue))
                for _ in range(process_cpu_count())]
    for spinner in spinners:
        spinner.start()
    counts = [queue.get() for _ in spinners]
    for spinner in spinners:
        spinner.join()
    shares: list[float] = []
    for series in counts:
        middle = statistics.median(series) if series else 0
        shares.extend(count / middle for count in series if middle)
    if not shares:
        return Steadiness(0, 0.0, 1.0)
    return Steadiness(len(shares), sum(share < 0.7 for share in shares) / len(shares), min(shares))
