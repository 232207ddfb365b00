"""Settings: defaults here, then ``instance/config.py``, then the environment.

Every setting below can be overridden in ``instance/config.py`` or as an environment variable
``FLASK_<NAME>`` (values are parsed as JSON where possible, so ``FLASK_BCRYPT_ROUNDS=10`` is an int).
A few well-known deployment variables are read without the prefix: ``DATABASE_URL``,
``DATABASE_REPLICA_URL``, ``SECRET_KEY``, ``REDIS_URL`` and ``SITE_URL``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import make_url

#: Values that must never be accepted as a production secret.
WEAK_SECRETS = frozenset({"", "dev", "secret", "changeme", "change-me", "development"})


class DefaultConfig:
    """Defaults for every setting; documented in README.md's configuration table."""

    SECRET_KEY: str | None = None
    #: ``None`` means the SQLite file ``instance/inkwell.sqlite3``.
    DATABASE_URL: str | None = None
    #: A read-only streaming replica of DATABASE_URL's PostgreSQL server (the same database on
    #: another host or port), read from the environment like DATABASE_URL. When set, GET
    #: requests to the views marked ``@reads_from_replica`` (list pages, feeds, the sitemap,
    #: the catalogue) read from it; everything else, every write and every service transaction
    #: uses the primary (see blog/replica.py). ``None``: one database, nothing changes.
    DATABASE_REPLICA_URL: str | None = None
    #: Seconds after a browser last committed a write (a post, a comment, a login, a cart)
    #: during which its requests read from the primary even on replica views, so a member sees
    #: their own change at once however far the replica lags.
    REPLICA_READ_YOUR_WRITES_SECONDS = 10
    #: Seconds to wait for the replica to accept a connection (PostgreSQL) before reading from
    #: the primary instead.
    REPLICA_CONNECT_TIMEOUT_SECONDS = 2
    #: After the replica failed to connect, each process reads from the primary for this many
    #: seconds before trying the replica again (one warning per failure, not one per request).
    REPLICA_RETRY_SECONDS = 10
    REDIS_URL: str | None = None

    # Connection pool (PostgreSQL; SQLite uses SQLAlchemy's defaults for files).
    DB_POOL_SIZE = 5
    DB_MAX_OVERFLOW = 10
    DB_POOL_TIMEOUT = 30
    DB_POOL_RECYCLE = 1800
    DB_POOL_PRE_PING = True
    #: How long a SQLite connection waits for another writer before "database is locked".
    SQLITE_BUSY_TIMEOUT_MS = 5000

    #: Statements slower than this are logged as warnings (parameters masked).
    SLOW_QUERY_MS = 200
    LOG_LEVEL = "INFO"
    #: Log every SQL statement with its parameters (Flask-SQLAlchemy's switch): for a developer
    #: chasing a query, e.g. FLASK_SQLALCHEMY_ECHO=true flask run. Never in production, since
    #: parameters include emails and password hashes.
    SQLALCHEMY_ECHO = False

    BCRYPT_ROUNDS = 12
    PASSWORD_MIN_LENGTH = 8
    #: The lowest zxcvbn score (0-4) a new password may have; 3 ("safely unguessable") refuses
    #: common and breached passwords, names and keyboard patterns. 0 turns the check off.
    PASSWORD_MIN_SCORE = 3

    #: Seconds a password reset link works (and only until the password changes).
    PASSWORD_RESET_MAX_AGE = 3600
    #: Seconds a link confirming an email address works.
    EMAIL_VERIFY_MAX_AGE = 7 * 24 * 3600
    #: Asking for a reset link or a new confirmation link, per client address; the same again
    #: per email address (RESET_RATE_LIMIT_PER_ADDRESS), so one inbox cannot be flooded.
    RESET_RATE_LIMIT = "10 per hour"
    RESET_RATE_LIMIT_PER_ADDRESS = "3 per hour"

    # Login throttling (database-backed, so every worker and host sees the same counts).
    LOGIN_MAX_FAILURES_PER_ACCOUNT = 10
    LOGIN_MAX_FAILURES_PER_ADDRESS = 100
    LOGIN_THROTTLE_WINDOW_SECONDS = 900

    #: Seconds to wait for Redis to connect or answer before treating it as down, so a
    #: vanished Redis costs a request at most this (rate limits, /healthz), not a hung worker.
    REDIS_TIMEOUT_SECONDS = 0.5

    #: Flask-Limiter; also switches off the login throttle when False.
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI: str | None = None  # None: REDIS_URL if set, else in-process memory
    #: When the storage (Redis) fails, count in this process's memory instead of answering 500;
    #: Flask-Limiter checks now and then whether the storage is back and returns to it.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    REGISTER_RATE_LIMIT = "10 per hour"
    LOGIN_RATE_LIMIT = "60 per minute"
    #: Per member: new posts and edits together, and comments.
    POST_RATE_LIMIT = "30 per hour"
    #: Images an author may add to their library (/posts/media).
    MEDIA_RATE_LIMIT = "60 per hour"
    COMMENT_RATE_LIMIT = "10 per minute"

    #: How many reverse proxies in front of the app set X-Forwarded-For / -Proto (0: none).
    PROXY_FIX_X_FOR = 0
    PROXY_FIX_X_PROTO = 0

    #: Strict-Transport-Security max-age in seconds, sent while SESSION_COOKIE_SECURE is on
    #: (so not by `make run`'s plain http); 0 sends none.
    HSTS_MAX_AGE = 31_536_000  # one year

    # Cookies: Secure unless switched off (plain-http local serving) or in debug.
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # REMEMBER_COOKIE_SECURE follows SESSION_COOKIE_SECURE unless set.
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = timedelta(days=30)
    #: How long a login without "remember me" stays valid on the server.
    LOGIN_SESSION_LIFETIME = timedelta(days=14)

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the signed session
    #: The largest request body; above it, a 413 page. Uploaded files are cut at
    #: UPLOAD_MAX_BYTES while parsing (blog.security.SiteRequest), so a larger photo is a form
    #: message, not this page; what is left over only costs the bandwidth.
    MAX_CONTENT_LENGTH = 64 * 1024 * 1024

    SITE_NAME = "Inkwell"
    #: What the site is, in a sentence: the meta description of pages without one of their
    #: own, and what search engines and link previews show.
    SITE_DESCRIPTION = "Essays, notes and prints from a small independent publication."
    #: The line under the site's name on the home page.
    SITE_TAGLINE = "Writing and things we make."
    #: The site's public address: every link in an email or feed starts with it (never with
    #: the Host header a request carries). Set it in production: https://example.com.
    SITE_URL = "http://127.0.0.1:5000"
    #: Addresses per sitemap file; above it /sitemap.xml is an index of parts (the protocol's
    #: limit is 50,000).
    SITEMAP_MAX_URLS = 50_000
    #: The zone in which times are shown and typed (a scheduled post's time, say).
    SITE_TIMEZONE = "UTC"
    #: The small print at the foot of every page (an admin may change it in /admin/settings).
    SITE_FOOTER = ""
    #: Links to the publication elsewhere, one per line: "Label https://address".
    SITE_SOCIAL_LINKS = ""

    # The cache (Flask-Caching) of site settings and the pages linked from every page.
    #: None: Redis when REDIS_URL is set (every worker and host sees one cache, so a change
    #: shows everywhere at once), else files in CACHE_DIR (shared by the workers of one
    #: machine). "NullCache" switches caching off.
    CACHE_TYPE: str | None = None
    #: Where the file cache lives; None: <instance>/cache.
    CACHE_DIR: str | None = None
    #: Seconds an entry lives at most; writes invalidate what they change at once.
    CACHE_DEFAULT_TIMEOUT = 300
    CACHE_KEY_PREFIX = "inkwell:"

    # Mail (blog/mail): every message is an outbox row first, delivered by `flask worker`.
    #: SMTP server; None writes each message as an .eml file into MAIL_OUTBOX_FOLDER instead.
    MAIL_SERVER: str | None = None
    MAIL_PORT = 25
    #: STARTTLS after connecting (usually port 587).
    MAIL_USE_TLS = False
    #: TLS from the first byte (usually port 465).
    MAIL_USE_SSL = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    #: "Name <address>"; None: "<SITE_NAME> <noreply@<SITE_URL's host>>".
    MAIL_DEFAULT_SENDER: str | None = None
    #: Seconds to wait for the SMTP server to connect or answer.
    MAIL_TIMEOUT = 30
    #: Tries before a message that keeps failing temporarily is marked failed.
    MAIL_MAX_ATTEMPTS = 8
    #: Seconds before the first retry; doubled after each failure, up to MAIL_RETRY_MAX_DELAY.
    MAIL_RETRY_DELAY = 60
    MAIL_RETRY_MAX_DELAY = 3600
    #: A message claimed by a worker this many seconds ago and not finished (the worker was
    #: killed mid-send) goes back to the queue.
    MAIL_CLAIM_TIMEOUT = 600
    #: Seconds a due message may wait for its job before the periodic sweep enqueues it again.
    MAIL_SWEEP_AFTER = 120
    #: Folder of the .eml files when MAIL_SERVER is unset; None means <instance>/outbox.
    MAIL_OUTBOX_FOLDER: str | None = None

    # Jobs (blog/jobs.py): Huey; Redis when REDIS_URL is set, else this SQLite file.
    #: None means <instance>/jobs.sqlite3.
    JOBS_DATABASE: str | None = None
    #: Run every job inline where it is enqueued, with no worker (the tests' setting).
    JOBS_IMMEDIATE = False
    #: Threads of `flask worker` (each delivers one message at a time).
    JOBS_WORKERS = 2
    #: The longest an idle worker waits between looks at a SQLite queue, in seconds.
    JOBS_POLL_MAX_DELAY = 2.0
    #: Posts per page on the home, tag, profile, feed and search pages.
    POSTS_PER_PAGE = 10
    #: A search that matches more posts than this ranks only its title matches (the newest
    #: this many) and lists the other matches newest first after them, on SQLite: bm25 over
    #: every match of two common words costs 150 ms at 100,000 posts (blog.posts.services).
    SEARCH_RANKED_MATCHES = 1000
    #: Images per page of an author's library.
    MEDIA_PER_PAGE = 24

    # The shop. Prices are kept in this one currency, in its minor units (cents).
    SHOP_CURRENCY = "USD"
    #: Tax as a fraction of the discounted subtotal ("0.2" is 20%); see README for rounding.
    SHOP_TAX_RATE = "0"
    PRODUCTS_PER_PAGE = 12
    #: Orders per page of the customer's "Your orders".
    ORDERS_PER_PAGE = 20
    #: Rows per page of every admin list (products, orders, members, comments, posts, audit).
    ADMIN_PER_PAGE = 20
    #: The most of one item a cart line may hold.
    SHOP_MAX_LINE_QUANTITY = 20
    #: At or below this many, a product page says "Only N left".
    SHOP_LOW_STOCK = 3
    #: How to pay, in the order confirmation email and on the order page (the manual
    #: provider: bank transfer or on delivery).
    PAYMENT_INSTRUCTIONS = ("Pay by bank transfer, quoting your order number, or on delivery. "
                            "We will write to you when your payment arrives and when your order ships.")
    # The newsletter (blog/newsletter).
    #: Copies sent per minute (one batch a minute, over one SMTP connection).
    NEWSLETTER_RATE_PER_MINUTE = 600
    #: Seconds after which copies a worker claimed but never finished go back to the queue.
    NEWSLETTER_CLAIM_TIMEOUT = 300
    #: How long a confirmation link works, in seconds (7 days).
    NEWSLETTER_CONFIRM_MAX_AGE = 7 * 24 * 3600
    #: Seconds before asking again sends another confirmation link to the same address.
    NEWSLETTER_CONFIRM_RESEND_SECONDS = 300
    #: Subscribe requests per client, and per address.
    NEWSLETTER_RATE_LIMIT = "20 per hour"
    NEWSLETTER_RATE_LIMIT_PER_ADDRESS = "5 per hour"
    #: "Name <address>" of the newsletter; None: the site's sender (MAIL_DEFAULT_SENDER).
    NEWSLETTER_SENDER: str | None = None

    # Payments (blog/payments): "manual" (bank transfer or on delivery: an admin marks orders
    # paid) or "stripe" (Stripe Checkout's hosted page).
    PAYMENT_PROVIDER = "manual"
    #: Minutes an online order waits for its payment before it is cancelled and restocked
    #: (Stripe allows a Checkout Session 30 minutes to 24 hours).
    PAYMENT_WINDOW_MINUTES = 30
    STRIPE_SECRET_KEY: str | None = None
    #: The signing secret of the webhook endpoint registered at Stripe (whsec_…).
    STRIPE_WEBHOOK_SECRET: str | None = None
    #: Where the stripe library sends its calls; None: Stripe's own (tests point it at a
    #: local stand-in).
    STRIPE_API_BASE: str | None = None
    #: The origin of the payment page when it is not Stripe's own (a local stand-in in tests),
    #: allowed by the Content-Security-Policy's form-action.
    STRIPE_CHECKOUT_ORIGIN: str | None = None
    #: Seconds to wait for Stripe before telling the customer to try again.
    STRIPE_TIMEOUT = 20

    # Uploaded images (products, avatars): checked and re-encoded as WebP by blog/images.py,
    # served by the app (blog/uploads.py).
    #: Folder of the stored images; None means ``<instance>/uploads``.
    UPLOAD_FOLDER: str | None = None
    #: The largest image file accepted, in bytes (5 MiB); of a larger one, no more than this
    #: (plus one byte) is read before it is refused.
    UPLOAD_MAX_BYTES = 5 * 1024 * 1024
    #: The most pixels (width × height) an image may declare. Checked before decoding, so a
    #: small file that would expand to gigabytes of memory (a "decompression bomb") is
    #: refused; 25 million is a 6000 × 4000 photo, which decodes to about 100 MB.
    IMAGE_MAX_PIXELS = 25_000_000
    #: Longest side, in pixels, of the stored image; larger ones are scaled down, never up.
    IMAGE_SIZE = 1600
    #: Longest side, in pixels, of the thumbnail shown in the catalogue.
    THUMBNAIL_SIZE = 400


def normalize_database_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver.

    Hosting platforms hand out ``postgres://`` (which SQLAlchemy rejects) or plain
    ``postgresql://`` (which would pick psycopg2); both become ``postgresql+psycopg://``.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` options derived from the pool settings."""
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        # The busy timeout is also set by PRAGMA on connect; the driver timeout covers the
        # moment before that PRAGMA runs.
        return {"connect_args": {"timeout": config["SQLITE_BUSY_TIMEOUT_MS"] / 1000}}
    return {
        "pool_size": config["DB_POOL_SIZE"],
        "max_overflow": config["DB_MAX_OVERFLOW"],
        "pool_timeout": config["DB_POOL_TIMEOUT"],
        "pool_recycle": config["DB_POOL_RECYCLE"],
        "pool_pre_ping": config["DB_POOL_PRE_PING"],
    }


def redis_options(config: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for every Redis client Inkwell makes: short timeouts, so a Redis that
    has gone away is noticed quickly instead of holding requests."""
    timeout = float(config["REDIS_TIMEOUT_SECONDS"])
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout}


def read_environment(config: dict[str, Any]) -> None:
    """Copy the unprefixed deployment variables into ``config`` when they are set."""
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URL", "SECRET_KEY", "REDIS_URL", "SITE_URL"):
        value = os.environ.get(name)
        if value:
            config[name] = value
