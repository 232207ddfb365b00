"""What the mail tests share: a real SMTP server (aiosmtpd) on a loopback port that records
what it accepts and can be told to refuse, and readers for the outbox."""

from __future__ import annotations

import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import select

from blog.extensions import db
from blog.mail.models import EmailMessage


class SMTPServer:
    """The handler aiosmtpd calls. ``refuse`` holds SMTP answers ("451 Try later") given to
    the next RCPT commands, one each, before it accepts again; ``messages`` what it accepted."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[MimeMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: list[str] = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            if self.refuse:
                return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30) -> list[MimeMessage]:
        """The accepted messages once there are ``count`` of them; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {count} messages arrived in {timeout} s")


SMTPServerT = TypeVar("SMTPServerT", bound=SMTPServer)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(handler: SMTPServerT) -> Iterator[SMTPServerT]:
    """``handler`` answering SMTP on a free loopback port for the block."""
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    """A running SMTP server; point MAIL_SERVER/MAIL_PORT at it (see ``smtp_config``)."""
    with serving(SMTPServer()) as handler:
        yield handler


#: The secret the test apps and their worker processes share (signed links must match).
WORKER_SECRET = "worker-test-secret-key-0123456789"
REPOSITORY = Path(__file__).resolve().parents[2]


@contextmanager
def worker_processes(app: Flask, database_url: str, tmp_path: Path,
                     **env: str) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """``start()`` runs `flask worker` on ``app``'s database, job queue (its SQLite file, or
    its Redis) and SMTP server, with ``env`` added (``FLASK_<SETTING>`` values); every worker
    is stopped at the end (Ctrl-C, as a person would) and must not have printed a traceback."""
    config = app.config
    environment = dict(os.environ, DATABASE_URL=database_url, SECRET_KEY=WORKER_SECRET,
                       INKWELL_INSTANCE_PATH=str(tmp_path / "instance"),
                       FLASK_JOBS_IMMEDIATE="false", FLASK_JOBS_POLL_MAX_DELAY="0.2",
                       FLASK_MAIL_SERVER=config["MAIL_SERVER"], FLASK_MAIL_PORT=str(config["MAIL_PORT"]),
                       FLASK_SITE_URL=config["SITE_URL"], FLASK_SQLITE_BUSY_TIMEOUT_MS="30000", **env)
    environment.pop("REDIS_URL", None)
    if config["REDIS_URL"]:
        environment["REDIS_URL"] = config["REDIS_URL"]
    else:
        environment["FLASK_JOBS_DATABASE"] = config["JOBS_DATABASE"]
    workers: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        worker = subprocess.Popen([sys.executable, "-m", "flask", "worker", "--workers", "2"],
                                  cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
    for worker in workers:
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        assert worker.returncode == -signal.SIGKILL or "Traceback" not in output, output


def smtp_config(server: SMTPServer, **more: Any) -> dict[str, Any]:
    """Settings that send through ``server``."""
    return {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": server.port, "MAIL_TIMEOUT": 5, **more}


def outbox_rows(app: Flask) -> list[EmailMessage]:
    with app.app_context():
        return list(db.session.scalars(select(EmailMessage).order_by(EmailMessage.id)))


def eml_files(folder: Path) -> list[MimeMessage]:
    """The .eml files written to ``folder``, parsed, oldest first."""
    if not folder.exists():
        return []
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in sorted(folder.glob("*.eml"))]


def bodies(message: MimeMessage) -> tuple[str, str]:
    """The plain text and HTML parts of a delivered message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None, "expected text and HTML alternatives"
    return text.get_content(), html.get_content()
