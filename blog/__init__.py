"""Inkwell: a blog and a shop in one small Flask application.

``create_app()`` builds the application in small steps, each a ``register_*`` function, so a
reader can find where anything is wired up.

The steps import the domains (views, services, listeners) inside their bodies: every
``import blog.<module>`` runs this file first, so importing a low module such as
``blog.extensions`` or ``blog.database`` must not load the domains above it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request
from flask_login import user_logged_in
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from blog import jobs, replica, timezone, urls
from blog.config import (
    WEAK_SECRETS,
    DefaultConfig,
    engine_options,
    normalize_database_url,
    read_environment,
    redis_options,
)
from blog.database import init_database, start_counting, stop_counting
from blog.errors import register as register_error_pages
from blog.extensions import cache, csrf, db, limiter, login_manager, migrate
from blog.http_cache import conditional_for_visitors
from blog.security import SiteRequest, reject_nul_bytes, set_security_headers

request_log = logging.getLogger("inkwell.request")

_REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Inkwell application.

    Settings come from :class:`blog.config.DefaultConfig`, then ``instance/config.py``, then
    ``DATABASE_URL``/``SECRET_KEY``/``REDIS_URL``, then any ``FLASK_<NAME>`` variable, then
    ``test_config``.
    """
    app = Flask(
        __name__,
        # Runtime files (SQLite database, config.py) live in ./instance unless moved, e.g. to
        # a writable volume when the code directory is read-only.
        instance_path=os.environ.get("INKWELL_INSTANCE_PATH") or None,
        instance_relative_config=True,
        template_folder=os.path.join(_REPOSITORY_ROOT, "templates"),
        static_folder=os.path.join(_REPOSITORY_ROOT, "static"),
    )
    app.request_class = SiteRequest
    load_settings(app, test_config)
    register_logging(app)
    register_request_hooks(app)  # first, so timing and counting wrap every other hook
    register_extensions(app)
    register_blueprints(app)
    register_listeners(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


class ConfigurationError(RuntimeError):
    """The settings cannot run a safe application."""


def load_settings(app: Flask, test_config: Mapping[str, Any] | None) -> None:
    """Layer the settings sources, then derive the settings that depend on others."""
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    read_environment(app.config)
    app.config.from_prefixed_env()
    if os.environ.get("FLASK_SECRET_KEY"):
        # from_prefixed_env parses values as JSON: an all-digit key would become an int.
        app.config["SECRET_KEY"] = os.environ["FLASK_SECRET_KEY"]
    if test_config:
        app.config.from_mapping(test_config)

    config = app.config
    url = config["DATABASE_URL"] or "sqlite:///" + os.path.join(app.instance_path, "inkwell.sqlite3")
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(url)
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(config))
    replica.configure(config)  # DATABASE_REPLICA_URL: a second engine, for replica views
    if not config["RATELIMIT_STORAGE_URI"]:
        config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"] or "memory://"
    if config["RATELIMIT_STORAGE_URI"].startswith("redis"):  # redis:, rediss:, redis+unix:
        config.setdefault("RATELIMIT_STORAGE_OPTIONS", redis_options(config))
    _configure_cache(app)
    if app.debug:
        config["SESSION_COOKIE_SECURE"] = False
        config["REMEMBER_COOKIE_SECURE"] = False
    config.setdefault("REMEMBER_COOKIE_SECURE", config["SESSION_COOKIE_SECURE"])
    _check_secret_key(app)
    _check_shop_settings(app)
    for problem in (urls.check_site_url(app), timezone.check_site_timezone(app)):
        if problem:
            raise ConfigurationError(problem)
    app.config["SITE_URL"] = app.config["SITE_URL"].rstrip("/")


def _configure_cache(app: Flask) -> None:
    """Choose the cache's storage: Redis when there is one, else files in the instance folder,
    which every worker process of this machine shares."""
    config = app.config
    if config["CACHE_TYPE"] is None:
        if config["REDIS_URL"]:
            config["CACHE_TYPE"] = "RedisCache"
            config.setdefault("CACHE_REDIS_URL", config["REDIS_URL"])
            config.setdefault("CACHE_OPTIONS", redis_options(config))
        else:
            config["CACHE_TYPE"] = "FileSystemCache"
    if config["CACHE_TYPE"] == "FileSystemCache" and not config["CACHE_DIR"]:
        config["CACHE_DIR"] = os.path.join(app.instance_path, "cache")


def _check_secret_key(app: Flask) -> None:
    key = app.config.get("SECRET_KEY")
    if key and key not in WEAK_SECRETS and len(key) >= 16:
        return
    if app.debug or app.testing:
        if not key:
            app.config["SECRET_KEY"] = secrets.token_hex(32)  # sessions end at restart
        return
    raise ConfigurationError(
        "SECRET_KEY is missing or too weak (it must be at least 16 characters). Set it in the "
        "environment, e.g. export SECRET_KEY=\"$(python -c 'import secrets; "
        "print(secrets.token_hex(32))')\", or put SECRET_KEY = '...' in instance/config.py "
        "(`make run` writes one there for you)."
    )


def _check_shop_settings(app: Flask) -> None:
    """Refuse to start with a tax rate or currency the shop would get wrong on every order."""
    from blog.shop.pricing import parse_rate

    try:
        parse_rate(app.config["SHOP_TAX_RATE"])
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    currency = app.config["SHOP_CURRENCY"]
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
        raise ConfigurationError(f"SHOP_CURRENCY must be a three-letter code such as USD, not {currency!r}.")
    app.config["SHOP_CURRENCY"] = currency.upper()
    _check_payment_settings(app)


def _check_payment_settings(app: Flask) -> None:
    """Refuse to start with a payment provider that cannot take a payment."""
    config = app.config
    name = config["PAYMENT_PROVIDER"]
    if name not in ("manual", "stripe"):
        raise ConfigurationError(f"PAYMENT_PROVIDER must be manual or stripe, not {name!r}.")
    try:
        window = int(config["PAYMENT_WINDOW_MINUTES"])
    except (TypeError, ValueError):
        window = 0
    if name == "stripe":
        missing = [key for key in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET") if not config.get(key)]
        if missing:
            raise ConfigurationError(f"PAYMENT_PROVIDER=stripe needs {' and '.join(missing)}.")
        if not 30 <= window <= 24 * 60:
            raise ConfigurationError("PAYMENT_WINDOW_MINUTES must be from 30 to 1440 with Stripe "
                                     f"(how long a Checkout Session may live), not {window!r}.")
    elif window < 1:
        raise ConfigurationError(f"PAYMENT_WINDOW_MINUTES must be a whole number of minutes, not "
                                 f"{config['PAYMENT_WINDOW_MINUTES']!r}.")


def register_logging(app: Flask) -> None:
    """Log Inkwell's own records (requests, slow statements) to stderr, once per process."""
    logger = logging.getLogger("inkwell")
    logger.setLevel(app.config["LOG_LEVEL"])
    if not logger.handlers and not app.testing:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def register_extensions(app: Flask) -> None:
    """Bind the extensions from ``blog.extensions`` to this app."""
    from blog.accounts.services import load_user_for_token

    if app.config["PROXY_FIX_X_FOR"] or app.config["PROXY_FIX_X_PROTO"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"],  # type: ignore[method-assign]
                                x_proto=app.config["PROXY_FIX_X_PROTO"])
    db.init_app(app)
    with app.app_context():
        init_database(app, db.engine)
        replica.init_app(app, db.engines)
    migrate.init_app(app, db, directory=os.path.join(_REPOSITORY_ROOT, "migrations"))
    csrf.init_app(app)
    cache.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user_for_token)
    jobs.init_app(app)
    # Every module with jobs is imported here, so a worker knows each job it may be handed.
    import blog.mail.delivery
    import blog.newsletter.sending
    import blog.payments.jobs
    import blog.payments.services
    import blog.search.maintenance  # noqa: F401
    urls.register(app)
    timezone.register(app)
    from blog.pages.services import current_site

    app.extensions[urls.SITE_SETTINGS] = current_site


def register_blueprints(app: Flask) -> None:
    """Mount each domain's pages. Ids in URLs are ``<id:...>``: only numbers a table can hold
    match, so any other is a 404 before a view runs."""
    from blog.forms import IdConverter

    app.url_map.converters["id"] = IdConverter
    from blog.accounts.views import bp as accounts_bp
    from blog.admin.views import bp as admin_bp
    from blog.favicon import bp as favicon_bp
    from blog.health import bp as health_bp
    from blog.newsletter.views import bp as newsletter_bp
    from blog.pages.views import bp as pages_bp
    from blog.payments.views import bp as payments_bp
    from blog.posts.views import bp as posts_bp
    from blog.shop.views import bp as shop_bp
    from blog.sitemap import bp as sitemap_bp
    from blog.uploads import bp as images_bp

    app.register_blueprint(posts_bp)
    app.register_blueprint(shop_bp)
    app.register_blueprint(images_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(favicon_bp)
    app.register_blueprint(sitemap_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(payments_bp)
    app.register_blueprint(newsletter_bp)


def register_listeners(app: Flask) -> None:
    """Connect every reaction of one domain to another's event, all of them here.

    A lower domain announces what happened with a signal sent inside its transaction; the
    higher domain that cares listens, so dependencies keep pointing down. Each listener is
    connected for this app as sender: two apps in one process each get their own reactions,
    and connecting again for the same app changes nothing (blinker keeps one connection per
    receiver and sender), so nothing fires twice.
    """
    from blog.accounts.services import user_registered
    from blog.admin.audit import record_catalog_import, record_order_status, record_refund
    from blog.newsletter.sending import on_post_saved
    from blog.payments.refunds import refund_settled
    from blog.payments.services import close_attempts_on_cancel, record_manual_payment
    from blog.payments.views import answer_payment_page
    from blog.posts import fragments
    from blog.posts.services import post_saved
    from blog.shop.cart import create_member_cart
    from blog.shop.catalog_io import catalog_imported
    from blog.shop.emails import order_status_changed as mail_order_status
    from blog.shop.orders import order_awaits_payment, order_status_changed
    from blog.shop.views import merge_cart_on_login

    jobs.register_listeners()  # jobs asked for in a transaction are enqueued when it commits
    fragments.register_listeners()  # a committed change to posts drops visitors' cached lists
    user_registered.connect(create_member_cart, sender=app)  # a new member gets a cart
    user_logged_in.connect(merge_cart_on_login, sender=app)  # a visitor's cart joins theirs
    order_status_changed.connect(record_order_status, sender=app)  # every move is audited
    order_status_changed.connect(mail_order_status, sender=app)  # the customer hears of it
    catalog_imported.connect(record_catalog_import, sender=app)  # so is every CSV import's change
    order_status_changed.connect(record_manual_payment, sender=app)  # "mark paid" is in the ledger
    order_status_changed.connect(close_attempts_on_cancel, sender=app)  # no paying a cancelled order
    order_awaits_payment.connect(answer_payment_page, sender=app)  # the provider's page
    refund_settled.connect(record_refund, sender=app)  # every refund, done or refused, is audited
    post_saved.connect(on_post_saved, sender=app)  # a post to email gets its newsletter send


def register_request_hooks(app: Flask) -> None:
    """Security headers on every response; one log line per request with its SQL count."""

    @app.before_request
    def _start_request() -> None:
        g.request_started = time.perf_counter()
        g.sql_counter, g.sql_counter_token = start_counting()
        reject_nul_bytes()

    @app.after_request
    def _finish_request(response: Response) -> Response:
        response = conditional_for_visitors(response)
        set_security_headers(response)
        counter = g.get("sql_counter")
        started = g.get("request_started")
        if counter is not None and started is not None:
            request_log.info(
                "%s %s %s %.1fms %d sql", request.method, request.path, response.status_code,
                (time.perf_counter() - started) * 1000, counter.count,
            )
        return response

    @app.teardown_request
    def _stop_counting(exc: BaseException | None) -> None:
        token = g.pop("sql_counter_token", None)
        if token is not None:
            stop_counting(token)


def register_errorhandlers(app: Flask) -> None:
    """HTML error pages without tracebacks."""
    register_error_pages(app)


def register_commands(app: Flask) -> None:
    """``flask create-admin`` and the other management commands."""
    from blog.cli import register

    register(app)
