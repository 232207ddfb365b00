"""The newsletter through a real `flask worker` process, its SQLite queue and a real SMTP
server: one copy per confirmed subscriber, none for a pending one, none after a one-click
unsubscribe; and a worker killed in the middle of a send, restarted, sends each remaining copy
exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR, User
from blog.database_session import transaction
from blog.extensions import db
from blog.newsletter.models import NewsletterDelivery, Subscriber
from blog.newsletter.subscribers import unsubscribe_token
from blog.posts import services as posts
from tests.conftest import PASSWORD
from tests.mail.conftest import WORKER_SECRET as SECRET
from tests.mail.conftest import SMTPServer, serving, smtp_config, worker_processes
from tests.mail.test_worker import wait_until


class KillingSMTP(SMTPServer):
    """An SMTP server that kills the worker (SIGKILL: no chance to tidy up) when the
    ``kill_at``-th recipient is announced, before accepting it: that copy is never accepted,
    so a correct restart sends it, and every other copy, exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.kill_at: int | None = None
        self.worker: subprocess.Popen[str] | None = None
        self.recipients = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        with self.lock:
            self.recipients += 1
            if self.recipients == self.kill_at and self.worker is not None:
                os.kill(self.worker.pid, signal.SIGKILL)
                self.worker.wait()
                return "451 The worker is gone"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture
def smtp() -> Iterator[KillingSMTP]:
    with serving(KillingSMTP()) as handler:
        yield handler


@pytest.fixture
def config_overrides(smtp: KillingSMTP, tmp_path: Path) -> dict[str, Any]:
    return smtp_config(smtp, JOBS_IMMEDIATE=False, SITE_URL="https://letters.example", SECRET_KEY=SECRET,
                       JOBS_DATABASE=str(tmp_path / "jobs.sqlite3"), REDIS_URL=None)


@pytest.fixture
def start_worker(committed_app: Flask, database_url: str,
                 tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    with worker_processes(committed_app, database_url, tmp_path, FLASK_NEWSLETTER_CLAIM_TIMEOUT="1",
                          FLASK_NEWSLETTER_RATE_PER_MINUTE="1000") as start:
        yield start


def _site(app: Flask, confirmed: int, pending: int = 0) -> int:
    """An author and subscribers; returns the author's id."""
    with app.app_context():
        author = accounts.create_user("wanda", "wanda@example.com", PASSWORD, roles=(AUTHOR,))
        with transaction() as session:
            for number in range(confirmed):
                address = f"r{number:03d}@example.com"
                session.add(Subscriber(email=address, email_key=address, status="confirmed"))
            for number in range(pending):
                session.add(Subscriber(email=f"p{number}@example.com", email_key=f"p{number}@example.com",
                                       status="pending"))
        return author.id


def _publish(app: Flask, author_id: int, title: str) -> None:
    with app.app_context():
        author = db.session.get(User, author_id)
        assert author is not None
        posts.create_post(author, title, "Words for the readers.", "", True, send_newsletter=True)


def test_a_worker_sends_each_confirmed_subscriber_one_copy(committed_app: Flask, smtp: KillingSMTP,
                                                           start_worker: Any) -> None:
    app = committed_app
    author_id = _site(app, confirmed=3, pending=1)
    start_worker()
    _publish(app, author_id, "First")
    letters = smtp.wait_for(3)
    assert sorted(m["To"] for m in letters) == ["r000@example.com", "r001@example.com", "r002@example.com"]
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in letters)
    with app.app_context():
        leaver = db.session.scalars(select(Subscriber).where(Subscriber.email == "r001@example.com")).one()
        token = unsubscribe_token(leaver.id)
    blind = app.test_client()
    assert blind.post(f"/newsletter/unsubscribe/{token}").status_code == 200
    _publish(app, author_id, "Second")
    letters = smtp.wait_for(5)
    assert sorted(m["To"] for m in letters[3:]) == ["r000@example.com", "r002@example.com"]
    threading.Event().wait(1)  # nothing more arrives
    assert len(smtp.messages) == 5


def test_a_worker_killed_mid_send_resumes_and_sends_each_copy_once(
        committed_app: Flask, smtp: KillingSMTP, start_worker: Any) -> None:
    app = committed_app
    author_id = _site(app, confirmed=30)
    smtp.kill_at = 12
    smtp.worker = start_worker()
    _publish(app, author_id, "Interrupted")
    wait_until(lambda: smtp.worker is not None and smtp.worker.poll() is not None)
    assert len(smtp.messages) == 11  # sent and recorded before the kill
    with app.app_context():  # the dead worker's claims are still there
        claimed = db.session.scalars(select(NewsletterDelivery).where(
            NewsletterDelivery.status == "sending")).all()
        assert claimed
    threading.Event().wait(1.5)  # longer than NEWSLETTER_CLAIM_TIMEOUT
    smtp.worker = None
    start_worker()
    letters = smtp.wait_for(30, timeout=60)
    threading.Event().wait(1)
    recipients = [m["To"] for m in smtp.messages]
    assert len(recipients) == 30 and len(set(recipients)) == 30, sorted(recipients)
    with app.app_context():
        statuses = {d.status for d in db.session.scalars(select(NewsletterDelivery))}
    assert statuses == {"sent"}
    assert len(letters) == 30
