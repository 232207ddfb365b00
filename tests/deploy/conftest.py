"""What the deployment tests share: a log of which engine ran each statement, SQLite snapshots
standing in for a replica, and a real PostgreSQL streaming replica.

``streaming_replica`` makes a second PostgreSQL cluster with ``pg_basebackup`` from the test
server (``TEST_DATABASE_URL``), starts it in hot standby on a free loopback port and answers its
URL (the test database's name on the replica's port); it is stopped and removed at the end of
the session. It needs ``pg_basebackup`` and ``pg_ctl``, and, when the tests run as root, the
``postgres`` system user (the cluster's files must belong to it); else the tests using it are
skipped.

The server must accept replication connections from 127.0.0.1 for ``postgres``. When its
``pg_hba.conf`` has no line that does, and the tests may write that file (they run on the
database machine as root, as in CI), the fixture appends ``host replication postgres
127.0.0.1/32 trust`` once and reloads the server's configuration; the line stays (it is what a
replica needs, and a concurrent run may be relying on it).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url

from blog.config import normalize_database_url
from blog.extensions import db
from blog.replica import REPLICA_BIND
from tests.conftest import TEST_DATABASE_URL

log = logging.getLogger(__name__)


# --- which engine ran what --------------------------------------------------------------------


@dataclass
class EngineLog:
    """The statements each engine ran, in order: ``("primary" | "replica", sql)``."""

    entries: list[tuple[str, str]] = field(default_factory=list)

    def on(self, name: str) -> list[str]:
        return [sql for engine, sql in self.entries if engine == name]

    @property
    def primary(self) -> list[str]:
        return self.on("primary")

    @property
    def replica(self) -> list[str]:
        return self.on("replica")

    def clear(self) -> None:
        self.entries.clear()


@contextmanager
def engine_log(app: Flask) -> Iterator[EngineLog]:
    """Record, while the block runs, every statement of the app's primary and replica engines."""
    recorded = EngineLog()
    with app.app_context():
        engines: dict[str, Engine] = {"primary": db.engines[None], "replica": db.engines[REPLICA_BIND]}
    listeners = []
    for name, engine in engines.items():
        def listener(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                     executemany: bool, name: str = name) -> None:
            recorded.entries.append((name, statement))
        event.listen(engine, "before_cursor_execute", listener)
        listeners.append((engine, listener))
    try:
        yield recorded
    finally:
        for engine, listener in listeners:
            event.remove(engine, "before_cursor_execute", listener)


# --- SQLite snapshots ------------------------------------------------------------------------


def snapshot_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite database as it is now (its WAL included) over ``target``."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


# --- a PostgreSQL streaming replica ------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


def _allows_replication(hba_text: str) -> bool:
    """Whether some line of pg_hba.conf lets ``postgres`` open a replication connection from
    127.0.0.1 over TCP."""
    for line in hba_text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 4 or fields[0] not in ("host", "hostnossl"):
            continue
        databases, users, address = fields[1].split(","), fields[2].split(","), fields[3]
        if ("replication" in databases and ("all" in users or "postgres" in users)
                and address in ("127.0.0.1/32", "127.0.0.1", "127.0.0.0/8", "all", "samehost",
                                "0.0.0.0/0")):
            return True
    return False


def _ensure_replication_allowed(primary: Engine) -> None:
    with primary.connect() as connection:
        hba_file = connection.scalar(text("SHOW hba_file"))
    try:
        current = Path(hba_file).read_text()
    except OSError as error:
        pytest.skip(f"cannot read {hba_file} to check replication access: {error}")
    if _allows_replication(current):
        return
    if not os.access(hba_file, os.W_OK):
        pytest.skip(f"{hba_file} allows no replication connection from 127.0.0.1, and is read-only here")
    with open(hba_file, "a") as hba:
        hba.write("\n# Added by Inkwell's tests (tests/deploy): a streaming replica on this machine.\n"
                  "host replication postgres 127.0.0.1/32 trust\n")
    log.warning("appended 'host replication postgres 127.0.0.1/32 trust' to %s", hba_file)
    with primary.connect() as connection:
        connection.execute(text("SELECT pg_reload_conf()"))
    time.sleep(0.5)


def _standby_settings(primary: Engine) -> dict[str, str]:
    """What a hot standby must match (or exceed) from its primary, and what makes it answer
    like it (time zone, text search, date style)."""
    names = ("max_connections", "max_worker_processes", "max_wal_senders",
             "max_prepared_transactions", "max_locks_per_transaction", "timezone", "datestyle",
             "default_text_search_config", "lc_messages", "lc_monetary", "lc_numeric", "lc_time")
    with primary.connect() as connection:
        rows = connection.execute(text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"),
                                  {"names": list(names)}).all()
    return {name: setting for name, setting in rows}


def wait_for_replay(primary_url: str, replica_url: str, timeout: float = 30.0) -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    primary = create_engine(normalize_database_url(primary_url))
    replica = create_engine(normalize_database_url(replica_url))
    try:
        with primary.connect() as connection:
            target = connection.scalar(text("SELECT pg_current_wal_lsn()"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                with replica.connect() as connection:
                    if connection.scalar(text("SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)"),
                                         {"lsn": target}):
                        return
            except Exception:  # still starting
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica did not replay up to {target} in {timeout} s")
            time.sleep(0.05)
    finally:
        primary.dispose()
        replica.dispose()


@dataclass
class StreamingReplica:
    primary_url: str
    url: str
    data: Path

    def catch_up(self) -> None:
        wait_for_replay(self.primary_url, self.url)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop replaying the primary's changes while the block runs: the replica lags."""
        engine = create_engine(normalize_database_url(self.url))
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_wal_replay_pause()"))
                connection.commit()
            yield
        finally:
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_wal_replay_resume()"))
                connection.commit()
            engine.dispose()


@pytest.fixture(scope="session")
def streaming_replica(database_url: str) -> Iterator[StreamingReplica]:
    """A hot standby of the test PostgreSQL server (see the module's docstring)."""
    if not (TEST_DATABASE_URL and make_url(database_url).get_backend_name() == "postgresql"):
        pytest.skip("a streaming replica needs TEST_DATABASE_URL on PostgreSQL")
    basebackup, pg_ctl = _pg_bin("pg_basebackup"), _pg_bin("pg_ctl")
    if not basebackup or not pg_ctl:
        pytest.skip("pg_basebackup and pg_ctl are needed for a streaming replica")
    if os.geteuid() == 0 and not shutil.which("runuser"):
        pytest.skip("runuser is needed to run PostgreSQL as the postgres user")
    url = make_url(database_url)
    primary = create_engine(normalize_database_url(database_url))
    try:
        _ensure_replication_allowed(primary)
        settings = _standby_settings(primary)
    finally:
        primary.dispose()

    root = Path(tempfile.mkdtemp(prefix="inkwell-replica-"))
    data, logfile = root / "data", root / "replica.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    started = False
    try:
        subprocess.run(_as_postgres(
            basebackup, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
            "-U", url.username or "postgres", "-D", str(data), "-R", "-X", "stream", "-c", "fast"),
            check=True, capture_output=True, text=True, timeout=300)
        # Debian keeps a cluster's configuration outside its data folder: the copy has none.
        conf = {**{name: f"'{value}'" for name, value in settings.items()},
                "port": str(port), "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{root}'", "hot_standby": "on",
                "shared_buffers": "'32MB'", "fsync": "off", "autovacuum": "off"}
        files = {"postgresql.conf": "".join(f"{name} = {value}\n" for name, value in conf.items()),
                 "pg_hba.conf": "local all all trust\nhost all all 127.0.0.1/32 trust\n",
                 "pg_ident.conf": ""}
        for name, content in files.items():
            (data / name).write_text(content)
            if os.geteuid() == 0:
                shutil.chown(data / name, "postgres", "postgres")
        subprocess.run(_as_postgres(
            pg_ctl, "-D", str(data), "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "-l", str(logfile), "start", "-w", "-t", "60"),
            check=True, capture_output=True, text=True, timeout=90)
        started = True
        replica_url = url.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        wait_for_replay(database_url, replica_url)
        yield StreamingReplica(database_url, replica_url, data)
    except subprocess.CalledProcessError as error:
        details = logfile.read_text() if logfile.exists() else ""
        raise RuntimeError(f"{error.cmd} failed: {error.stderr}\n{details}") from error
    finally:
        if started:
            subprocess.run(_as_postgres(pg_ctl, "-D", str(data), "stop", "-m", "fast", "-w"),
                           check=False, capture_output=True, timeout=90)
        shutil.rmtree(root, ignore_errors=True)
