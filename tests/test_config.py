"""Settings: their order of precedence, the settings derived from them, and the safety checks.

Every test here builds its own app with ``create_app`` in a clean environment: the variables
that ``load_settings`` reads are removed and the instance folder is a temporary directory, so
the results do not depend on the developer's shell or on a local ``instance/config.py``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
from sqlalchemy.engine import make_url

from blog import ConfigurationError, create_app
from blog.config import WEAK_SECRETS, engine_options, normalize_database_url
from blog.extensions import db
from tests.conftest import CSRF_PATTERN, PASSWORD, dispose

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "a-proper-secret-key-of-32-chars!"


@pytest.fixture
def environ(monkeypatch, tmp_path):
    """A clean environment with the instance folder at ``tmp_path``; returns monkeypatch."""
    for name in list(os.environ):
        if name.startswith("FLASK_") or name in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("INKWELL_INSTANCE_PATH", str(tmp_path))
    # Apps built outside testing add a stderr handler to the "inkwell" logger once per
    # process; keep it from outliving the test.
    inkwell = logging.getLogger("inkwell")
    monkeypatch.setattr(inkwell, "handlers", list(inkwell.handlers))
    return monkeypatch


@pytest.fixture
def build(environ):
    """``build(test_config=None)`` creates an app; every app is disposed of afterwards."""
    apps = []

    def factory(test_config=None):
        app = create_app(test_config)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        dispose(app)


@pytest.fixture
def instance_config(tmp_path):
    """``instance_config("NAME = value", ...)`` writes the instance folder's config.py."""

    def write(*lines: str) -> Path:
        path = tmp_path / "config.py"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


# --- defaults ------------------------------------------------------------------------------


def test_defaults(build, environ, tmp_path):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    app = build()
    config = app.config
    assert not app.debug and not app.testing
    assert config["SECRET_KEY"] == GOOD_KEY
    assert config["BCRYPT_ROUNDS"] == 12
    assert config["PASSWORD_MIN_LENGTH"] == 8
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///" + str(tmp_path / "inkwell.sqlite3")
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert config["RATELIMIT_ENABLED"] is True
    assert app.instance_path == str(tmp_path)


def test_default_database_lives_in_the_instance_folder(build, environ, tmp_path):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    app = build()
    with app.app_context():
        assert db.engine.url.database == str(tmp_path / "inkwell.sqlite3")


@pytest.mark.parametrize(("value", "echo"), [(None, False), ("true", True)])
def test_sqlalchemy_echo_switch_logs_statements(build, environ, value, echo):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    if value is not None:
        environ.setenv("FLASK_SQLALCHEMY_ECHO", value)
    app = build()
    with app.app_context():
        assert db.engine.echo is echo


def test_redis_url_becomes_the_rate_limit_storage(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("REDIS_URL", "redis://cache.example:6379/3")
    app = build()
    assert app.config["REDIS_URL"] == "redis://cache.example:6379/3"
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://cache.example:6379/3"


def test_explicit_rate_limit_storage_wins_over_redis_url(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("REDIS_URL", "redis://cache.example:6379/3")
    environ.setenv("FLASK_RATELIMIT_STORAGE_URI", "memory://")
    app = build()
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"


# --- order of precedence -------------------------------------------------------------------


@pytest.fixture
def layered(instance_config):
    """An instance config.py that sets every setting the layers above it override."""
    instance_config(
        "SECRET_KEY = 'instance-secret-key-0123456789'",
        "DATABASE_URL = 'sqlite:////instance/instance.sqlite3'",
        "REDIS_URL = 'redis://instance.example:6379/0'",
        "BCRYPT_ROUNDS = 9",
        "SITE_NAME = 'From instance'",
    )


def test_instance_config_overrides_defaults(build, layered):
    app = build()
    config = app.config
    assert config["SECRET_KEY"] == "instance-secret-key-0123456789"
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////instance/instance.sqlite3"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://instance.example:6379/0"
    assert config["BCRYPT_ROUNDS"] == 9
    assert config["SITE_NAME"] == "From instance"


def test_deployment_variables_override_instance_config(build, environ, layered):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("DATABASE_URL", "postgres://web:pw@db.example/inkwell")
    environ.setenv("REDIS_URL", "redis://env.example:6379/1")
    config = build().config
    assert config["SECRET_KEY"] == GOOD_KEY
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://web:pw@db.example/inkwell"
    assert config["RATELIMIT_STORAGE_URI"] == "redis://env.example:6379/1"
    assert config["BCRYPT_ROUNDS"] == 9  # not a deployment variable: the instance value stays


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL", "REDIS_URL"])
def test_empty_deployment_variable_is_ignored(build, environ, layered, name):
    environ.setenv(name, "")
    config = build().config
    assert config["SECRET_KEY"] == "instance-secret-key-0123456789"
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////instance/instance.sqlite3"
    assert config["REDIS_URL"] == "redis://instance.example:6379/0"


def test_flask_prefixed_variables_override_deployment_variables(build, environ, layered):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("DATABASE_URL", "sqlite:////env/env.sqlite3")
    environ.setenv("FLASK_SECRET_KEY", "prefixed-secret-key-0123456789")
    environ.setenv("FLASK_DATABASE_URL", "sqlite:////prefixed/prefixed.sqlite3")
    environ.setenv("FLASK_BCRYPT_ROUNDS", "7")
    config = build().config
    assert config["SECRET_KEY"] == "prefixed-secret-key-0123456789"
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////prefixed/prefixed.sqlite3"
    assert config["BCRYPT_ROUNDS"] == 7


def test_test_mapping_overrides_everything(build, environ, layered):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("DATABASE_URL", "sqlite:////env/env.sqlite3")
    environ.setenv("FLASK_BCRYPT_ROUNDS", "7")
    environ.setenv("FLASK_SITE_NAME", "From FLASK_")
    config = build({"BCRYPT_ROUNDS": 5, "SITE_NAME": "From mapping",
                    "DATABASE_URL": "sqlite:////mapping/mapping.sqlite3"}).config
    assert config["BCRYPT_ROUNDS"] == 5
    assert config["SITE_NAME"] == "From mapping"
    assert config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////mapping/mapping.sqlite3"
    assert config["SECRET_KEY"] == GOOD_KEY  # not in the mapping: the layer below stays


@pytest.mark.parametrize("value, expected", [
    ("7", 7),
    ("false", False),
    ("true", True),
    ("null", None),
    ("My Site", "My Site"),       # not JSON: stays a string
    ('"12"', "12"),              # JSON string
])
def test_flask_prefixed_values_are_parsed_as_json(build, environ, value, expected):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("FLASK_SOME_SETTING", value)
    assert build().config["SOME_SETTING"] == expected


def test_flask_bcrypt_rounds_is_an_int(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("FLASK_BCRYPT_ROUNDS", "7")
    rounds = build().config["BCRYPT_ROUNDS"]
    assert rounds == 7 and isinstance(rounds, int)


def test_instance_path_defaults_to_repository_instance_folder(environ):
    environ.delenv("INKWELL_INSTANCE_PATH")
    environ.setenv("SECRET_KEY", GOOD_KEY)
    # Only the path is checked; a real instance/config.py there may change other settings.
    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": GOOD_KEY})
    try:
        assert app.instance_path == str(REPOSITORY_ROOT / "instance")
    finally:
        dispose(app)


# --- database URLs and engines -------------------------------------------------------------


@pytest.mark.parametrize("url, expected", [
    ("postgres://u:pw@db.example:5432/inkwell", "postgresql+psycopg://u:pw@db.example:5432/inkwell"),
    ("postgresql://u:pw@db.example/inkwell", "postgresql+psycopg://u:pw@db.example/inkwell"),
    ("postgresql://u@db.example/inkwell?sslmode=require",
     "postgresql+psycopg://u@db.example/inkwell?sslmode=require"),
    ("postgresql+psycopg://u:pw@db.example/inkwell", "postgresql+psycopg://u:pw@db.example/inkwell"),
    ("postgresql+psycopg2://u:pw@db.example/inkwell",
     "postgresql+psycopg2://u:pw@db.example/inkwell"),
    ("postgresql+asyncpg://u:pw@db.example/inkwell", "postgresql+asyncpg://u:pw@db.example/inkwell"),
    ("sqlite:////var/lib/inkwell/inkwell.sqlite3", "sqlite:////var/lib/inkwell/inkwell.sqlite3"),
    ("sqlite:///relative.sqlite3", "sqlite:///relative.sqlite3"),
    ("sqlite://", "sqlite://"),
])
def test_normalize_database_url(url, expected):
    assert normalize_database_url(url) == expected


def test_normalize_database_url_keeps_the_password():
    """The password must survive (SQLAlchemy hides it as *** unless told not to), escaped
    characters included."""
    url = normalize_database_url("postgres://web:s3cr%40t%3Aword@db.example:6543/shop")
    assert "***" not in url
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.username == "web"
    assert parsed.password == "s3cr@t:word"
    assert (parsed.host, parsed.port, parsed.database) == ("db.example", 6543, "shop")


def test_postgres_engine_options_come_from_settings(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("DATABASE_URL", "postgres://web:pw@db.example/inkwell")
    environ.setenv("FLASK_DB_POOL_SIZE", "3")
    environ.setenv("FLASK_DB_MAX_OVERFLOW", "4")
    environ.setenv("FLASK_DB_POOL_RECYCLE", "600")
    app = build()
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == 3
    assert options["max_overflow"] == 4
    assert options["pool_recycle"] == 600
    assert options["pool_pre_ping"] is True
    assert options["pool_timeout"] == 30
    assert "connect_args" not in options
    with app.app_context():  # the engine exists without connecting
        assert db.engine.url.drivername == "postgresql+psycopg"
        assert db.engine.url.password == "pw"
        assert db.engine.pool.size() == 3


def test_sqlite_engine_options_set_the_driver_timeout(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("FLASK_SQLITE_BUSY_TIMEOUT_MS", "2500")
    app = build()
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {"connect_args": {"timeout": 2.5}}


def test_engine_options_function():
    settings = {"DB_POOL_SIZE": 5, "DB_MAX_OVERFLOW": 10, "DB_POOL_TIMEOUT": 30,
                "DB_POOL_RECYCLE": 1800, "DB_POOL_PRE_PING": True, "SQLITE_BUSY_TIMEOUT_MS": 5000}
    postgres = engine_options({**settings,
                               "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@h/d"})
    assert postgres == {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30,
                        "pool_recycle": 1800, "pool_pre_ping": True}
    sqlite = engine_options({**settings, "SQLALCHEMY_DATABASE_URI": "sqlite:////x.sqlite3"})
    assert sqlite == {"connect_args": {"timeout": 5.0}}


def test_explicit_engine_options_are_kept(build, environ, instance_config):
    instance_config(f"SECRET_KEY = {GOOD_KEY!r}",
                    "SQLALCHEMY_ENGINE_OPTIONS = {'connect_args': {'timeout': 1}}")
    app = build()
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {"connect_args": {"timeout": 1}}


# --- the secret key ------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "dev", "changeme", "0123456789", "fifteen-chars!!"])
def test_refuses_to_start_without_a_proper_secret_key(build, environ, key):
    if key is not None:
        environ.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigurationError) as raised:
        build()
    message = str(raised.value)
    assert "SECRET_KEY" in message
    assert "16 characters" in message
    assert "export SECRET_KEY=" in message  # how to set it
    assert "instance/config.py" in message


def test_weak_key_in_instance_config_is_refused_too(build, instance_config):
    instance_config("SECRET_KEY = 'dev'")
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        build()


def test_weak_secrets_list():
    assert {"dev", "changeme", ""} <= WEAK_SECRETS


def test_sixteen_characters_are_enough(build, environ):
    environ.setenv("SECRET_KEY", "sixteen-chars-ok")
    assert build().config["SECRET_KEY"] == "sixteen-chars-ok"


def test_all_digit_flask_secret_key_stays_a_string(build, environ):
    """FLASK_ values are parsed as JSON, which would make an all-digit key an int (and crash
    the length check); the secret key is taken verbatim."""
    environ.setenv("FLASK_SECRET_KEY", "12345678901234567890123456789012")
    assert build().config["SECRET_KEY"] == "12345678901234567890123456789012"


@pytest.mark.parametrize("test_config", [{"TESTING": True}, {"DEBUG": True}])
def test_testing_or_debug_generates_a_random_key(build, test_config):
    first = build(test_config).config["SECRET_KEY"]
    second = build(test_config).config["SECRET_KEY"]
    assert isinstance(first, str) and len(first) >= 32
    assert first != second


def test_flask_debug_variable_generates_a_random_key(build, environ):
    environ.setenv("FLASK_DEBUG", "1")
    app = build()
    assert app.debug
    assert len(app.config["SECRET_KEY"]) >= 32


def test_testing_keeps_a_given_key(build):
    assert build({"TESTING": True, "SECRET_KEY": GOOD_KEY}).config["SECRET_KEY"] == GOOD_KEY


# --- cookies -------------------------------------------------------------------------------


def test_cookies_are_secure_by_default(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    config = build().config
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert config["REMEMBER_COOKIE_SECURE"] is True
    assert config["REMEMBER_COOKIE_HTTPONLY"] is True
    assert config["REMEMBER_COOKIE_SAMESITE"] == "Lax"


def test_secure_cookies_can_be_switched_off_for_plain_http(build, environ):
    environ.setenv("SECRET_KEY", GOOD_KEY)
    environ.setenv("FLASK_SESSION_COOKIE_SECURE", "false")
    config = build().config
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["REMEMBER_COOKIE_SECURE"] is False  # follows the session cookie
    assert config["SESSION_COOKIE_HTTPONLY"] is True


@pytest.mark.parametrize("how", ["environment", "mapping"])
def test_debug_turns_secure_cookies_off(build, environ, how):
    if how == "environment":
        environ.setenv("FLASK_DEBUG", "1")
        app = build()
    else:
        app = build({"DEBUG": True})
    assert app.debug
    assert app.config["SESSION_COOKIE_SECURE"] is False
    assert app.config["REMEMBER_COOKIE_SECURE"] is False


# --- extensions ----------------------------------------------------------------------------


def test_importing_extensions_needs_no_app():
    """In a fresh interpreter: importing ``blog.extensions`` creates no app and reads no
    settings (it works without SECRET_KEY), and the extensions are not bound to anything."""
    code = (
        "import flask\n"
        "from blog.extensions import csrf, db, limiter, login_manager, migrate\n"
        "assert not flask.current_app\n"
        "try:\n"
        "    db.engine\n"
        "except RuntimeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('db is bound to an app')\n"
        "assert not limiter.initialized\n"
        "print('ok')\n"
    )
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("FLASK_") and name not in ("SECRET_KEY", "DATABASE_URL")}
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPOSITORY_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_two_apps_side_by_side(build, tmp_path):
    first = build({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'first.sqlite3'}",
                   "SITE_NAME": "First"})
    second = build({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'second.sqlite3'}",
                    "SITE_NAME": "Second"})
    with first.app_context():
        first_engine = db.engine
    with second.app_context():
        second_engine = db.engine
    assert first_engine is not second_engine
    assert first_engine.url.database.endswith("first.sqlite3")
    assert second_engine.url.database.endswith("second.sqlite3")
    # Both answer requests, each on its own database, after the other was created.
    for app in (first, second):
        with app.app_context():
            flask_migrate.upgrade()
    for app in (first, second):
        health = app.test_client().get("/healthz").get_json()
        assert (health["status"], health["database"]) == ("ok", "ok")
    assert (tmp_path / "first.sqlite3").exists() and (tmp_path / "second.sqlite3").exists()
    assert first.config["SITE_NAME"] == "First" and second.config["SITE_NAME"] == "Second"


@pytest.mark.xfail(strict=True, reason=(
    "blog.extensions.limiter is one Flask-Limiter object for every app; init_app stores "
    "RATELIMIT_ENABLED (and the storage) on it, so creating a second app changes the rate "
    "limiting of the first"))
def test_second_app_does_not_change_rate_limiting_of_the_first(build, tmp_path):
    limited = build({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite3'}",
                     "LOGIN_RATE_LIMIT": "1 per minute", "WTF_CSRF_ENABLED": False})
    build({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite3'}",
           "RATELIMIT_ENABLED": False})
    client = limited.test_client()
    statuses = [client.post("/auth/login", data={}).status_code for _ in range(2)]
    assert statuses[-1] == 429


# --- cookies on a real login ---------------------------------------------------------------


def https_login(client, *, remember: bool = False):
    """Log in over https; Flask-WTF checks the Referer of https form posts."""
    token = csrf_token_https(client)
    data = {"csrf_token": token, "username": "alice", "password": PASSWORD}
    if remember:
        data["remember"] = "y"
    return client.post("/auth/login", data=data, base_url="https://localhost",
                       headers={"Referer": "https://localhost/auth/login"})


def csrf_token_https(client) -> str:
    page = client.get("/auth/login", base_url="https://localhost").get_data(as_text=True)
    match = CSRF_PATTERN.search(page)
    assert match, "no CSRF token on the login page"
    return match.group(1)


def set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def test_login_cookie_attributes(client, auth, make_user):
    """The test apps serve plain http (SESSION_COOKIE_SECURE off): HttpOnly and SameSite=Lax
    still, but no Secure."""
    make_user("alice")
    response = auth.login("alice", PASSWORD, remember=True)
    assert response.status_code == 302
    cookies = set_cookies(response)
    for name in ("session", "remember_token"):
        assert "HttpOnly" in cookies[name]
        assert "SameSite=Lax" in cookies[name]
        assert "Secure" not in cookies[name]


# DEBUG False as well: a FLASK_DEBUG=1 in the shell would otherwise switch Secure off.
@pytest.mark.parametrize("config_overrides", [{"SESSION_COOKIE_SECURE": True, "DEBUG": False}])
def test_login_cookies_are_secure_over_https(app, make_user):
    make_user("alice")
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    client = app.test_client()
    response = https_login(client, remember=True)
    assert response.status_code == 302, response.get_data(as_text=True)
    cookies = set_cookies(response)
    for name in ("session", "remember_token"):
        assert "Secure" in cookies[name]
        assert "HttpOnly" in cookies[name]
        assert "SameSite=Lax" in cookies[name]
    assert client.get_cookie("session").secure is True
    # Sent back over https, the cookie works: the member is logged in.
    assert client.get("/auth/password", base_url="https://localhost").status_code == 200


@pytest.mark.parametrize(("name", "value"), [("SHOP_TAX_RATE", "1.5"), ("SHOP_TAX_RATE", "abc"),
                                             ("SHOP_CURRENCY", "dollars"), ("SHOP_CURRENCY", 3)])
def test_bad_shop_settings_refuse_to_start(name: str, value: object) -> None:
    from blog import ConfigurationError

    with pytest.raises(ConfigurationError, match=name):
        create_app({"TESTING": True, name: value, "DATABASE_URL": "sqlite://"})


def test_shop_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASK_SHOP_TAX_RATE", "0.2")
    monkeypatch.setenv("FLASK_SHOP_CURRENCY", "eur")
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    assert app.config["SHOP_CURRENCY"] == "EUR"
    from blog.shop.pricing import parse_rate
    assert str(parse_rate(app.config["SHOP_TAX_RATE"])) == "0.2"
