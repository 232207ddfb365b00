"""How fast a newsletter goes out: one post to N confirmed subscribers (10,000 by default),
through a real SMTP server on a loopback port (aiosmtpd, accepting and counting), in one batch
over one connection, on SQLite or on PostgreSQL (``--database-url``).

    python -m bench.newsletter [--subscribers 10000] [--database-url postgresql://...]

It prints the time to write the deliveries (one INSERT ... SELECT), the time to send them,
and the copies per second. The rate limit (NEWSLETTER_RATE_PER_MINUTE) is set above N, so
this measures what the site and the SMTP round trips can do; a real relay is slower.
"""

from __future__ import annotations

import argparse
import platform
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from typing import Any

import flask_migrate
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, func, insert, select, text

from blog import create_app
from blog.accounts import services as accounts
from blog.accounts.models import AUTHOR
from blog.extensions import db
from blog.newsletter import sending
from blog.newsletter.models import NewsletterDelivery, NewsletterSend, Subscriber
from blog.posts import services as posts


class Sink:
    """Accepts every message and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="inkwell-bench-")
    url = args.database_url or f"sqlite:///{folder}/bench.sqlite3"
    if url.startswith("postgresql"):
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    app = create_app({
        "SECRET_KEY": "bench-secret-key-0123456789abcdef", "DATABASE_URL": url, "TESTING": True,
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port, "JOBS_IMMEDIATE": False,
        "JOBS_DATABASE": f"{folder}/jobs.sqlite3", "CACHE_TYPE": "SimpleCache",
        "NEWSLETTER_RATE_PER_MINUTE": args.subscribers + 1, "BCRYPT_ROUNDS": 4,
    })
    try:
        with app.app_context():
            flask_migrate.upgrade()
            author = accounts.create_user("bench", "bench@example.com", "correct horse battery",
                                          roles=(AUTHOR,))
            db.session.execute(insert(Subscriber), [
                {"email": f"reader{n}@example.com", "email_key": f"reader{n}@example.com",
                 "status": "confirmed", "source": "import"} for n in range(args.subscribers)])
            db.session.commit()
            posts.create_post(author, "The benchmark letter", "Some **Markdown** text. " * 40, "", True,
                              send_newsletter=True)
            send_id = db.session.scalar(select(NewsletterSend.id))
            if send_id is None:
                raise SystemExit("publishing the letter queued no newsletter send")
            started = time.perf_counter()
            assert sending.dispatch(send_id)
            dispatched = time.perf_counter()
            sent = sending.run_batch(send_id)
            finished = time.perf_counter()
            written = db.session.scalar(select(func.count()).select_from(NewsletterDelivery)
                                        .where(NewsletterDelivery.status == "sent"))
        assert sent == written == sink.count == args.subscribers, (sent, written, sink.count)
        seconds = finished - dispatched
        print(f"newsletter bench, {datetime.now(UTC):%Y-%m-%d}, {platform.node()} "
              f"({platform.machine()}, {platform.python_version()}), {url.split(':')[0]}")
        print(f"  deliveries written: {args.subscribers} in {dispatched - started:.2f} s")
        print(f"  sent: {sent} in {seconds:.1f} s = {sent / seconds:.0f} copies/s "
              f"({sent / seconds * 60:.0f} a minute) over one SMTP connection")
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
