"""``flask`` commands: ``create-admin`` in-process, ``db upgrade``/``db check`` as real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import selectinload

from blog.accounts.models import User
from blog.extensions import db
from blog.security import check_password
from tests.conftest import PASSWORD

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
FLASK = Path(sys.executable).parent / "flask"  # the venv's flask next to the running python


def create_admin(runner, *args: str, input: str | None = None):
    """Run ``flask create-admin`` in-process, as Flask's testing guide does: no app context is
    pushed for it (the command pushes its own; ``flask`` would push one too)."""
    return runner.invoke(args=["create-admin", *args], input=input)


def users(app) -> list[User]:
    with app.app_context():
        return list(db.session.scalars(select(User).order_by(User.id).options(selectinload(User.roles))))


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


# --- create-admin --------------------------------------------------------------------------


def test_create_admin_with_password_option(runner, app):
    result = create_admin(runner, "--username", "root", "--email", "root@example.com",
                          "--password", PASSWORD)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Created admin root <root@example.com>."
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "root")
                                 .options(selectinload(User.roles)))
        assert user is not None
        assert user.email == "root@example.com"
        assert user.has_role("admin")
        assert user.is_admin
        assert [role.name for role in user.roles] == ["admin"]
        assert user.active
        assert user.password_hash.startswith("$2b$04$")  # bcrypt at the test cost
        assert PASSWORD not in user.password_hash
        assert check_password(user.password_hash, PASSWORD)


def test_create_admin_can_log_in(runner, auth):
    create_admin(runner, "--username", "root", "--email", "root@example.com",
                 "--password", PASSWORD)
    assert auth.login("root", PASSWORD).status_code == 302
    assert auth.client.get("/auth/password").status_code == 200


def test_create_admin_prompts_for_password_twice(runner, app):
    result = create_admin(runner, "--username", "root", "--email", "root@example.com",
                          input="secret pass 1\nsecret pass 1\n")
    assert result.exit_code == 0, result.output
    assert "Password:" in result.output
    assert "Repeat for confirmation:" in result.output
    assert "secret pass 1" not in result.output  # hidden input is not echoed
    assert "Created admin root <root@example.com>." in result.output
    (user,) = users(app)
    assert user.has_role("admin")
    assert check_password(user.password_hash, "secret pass 1")


def test_create_admin_prompt_mismatch_creates_nothing(runner, app):
    """Two different entries: click asks again; at end of input it aborts."""
    result = create_admin(runner, "--username", "root", "--email", "root@example.com",
                          input="secret pass 1\nsecret pass 2\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert user_count(app) == 0


@pytest.mark.parametrize("username, email, message", [
    ("ALICE", "other@example.com", "That username is taken."),
    ("Alice", "other@example.com", "That username is taken."),
    ("root", "ALICE@Example.COM", "An account with that email already exists."),
])
def test_create_admin_refuses_duplicates(runner, app, make_user, username, email, message):
    make_user("alice", email="alice@example.com")
    result = create_admin(runner, "--username", username, "--email", email,
                          "--password", PASSWORD)
    assert result.exit_code != 0
    assert f"Error: {message}" in result.output
    assert "Traceback" not in result.output
    (user,) = users(app)
    assert user.username == "alice"
    assert not user.has_role("admin")  # the existing member was not promoted either


@pytest.mark.parametrize("option, value, message", [
    ("--username", "bad name!", "Use letters, digits, '-' and '_' only."),
    ("--username", "al", "Field must be between 3 and 32 characters long."),
    ("--email", "not-an-email", "Invalid email address."),
    ("--password", "short", "Use at least 8 characters."),
])
def test_create_admin_validates_like_registration(runner, app, option, value, message):
    options = {"--username": "root", "--email": "root@example.com", "--password": PASSWORD}
    options[option] = value
    result = create_admin(runner, *[part for pair in options.items() for part in pair])
    assert result.exit_code != 0
    assert f"{option}: {message}" in result.output
    assert user_count(app) == 0


def test_create_admin_reports_every_invalid_option(runner, app):
    result = create_admin(runner, "--username", "x!", "--email", "nope", "--password", "short")
    assert result.exit_code != 0
    for option in ("--username", "--email", "--password"):
        assert option in result.output
    assert "--confirm" not in result.output  # an internal field, not an option of the command
    assert user_count(app) == 0


def test_create_admin_requires_username_and_email(runner, app):
    result = create_admin(runner, "--password", PASSWORD)
    assert result.exit_code != 0
    assert "--username" in result.output
    assert user_count(app) == 0


# --- flask db, from the repository root, as an operator runs it ----------------------------


def flask_environment(instance: Path, database: Path) -> dict[str, str]:
    """The test process's environment without anything that could point ``flask`` elsewhere:
    no FLASK_APP (``wsgi.py`` must be found on its own), no inherited database or keys."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("FLASK_", "TEST_"))
           and name not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL", "INKWELL_INSTANCE_PATH")}
    env.update({
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "cli-test-secret-key-0123456789",
        "INKWELL_INSTANCE_PATH": str(instance),
    })
    return env


def run_flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FLASK), *args], check=False, cwd=REPOSITORY_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory):
    """A fresh SQLite file upgraded by ``flask db upgrade`` in a separate process."""
    instance = tmp_path_factory.mktemp("cli-instance")
    database = instance / "cli.sqlite3"
    env = flask_environment(instance, database)
    result = run_flask(env, "db", "upgrade")
    return env, database, result


def test_flask_db_upgrade_from_repository_root(upgraded):
    _env, database, result = upgraded
    assert result.returncode == 0, result.stderr
    assert "Running upgrade" in result.stderr
    assert database.exists()


def test_flask_db_check_finds_models_and_migrations_in_step(upgraded):
    env, _database, upgrade = upgraded
    assert upgrade.returncode == 0, upgrade.stderr
    result = run_flask(env, "db", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No new upgrade operations detected." in result.stdout


def test_upgrade_seeds_the_admin_role_and_no_users(upgraded):
    _env, database, upgrade = upgraded
    assert upgrade.returncode == 0, upgrade.stderr
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            roles = connection.scalars(text("SELECT name FROM roles")).all()
            users = connection.scalar(text("SELECT count(*) FROM users"))
    finally:
        engine.dispose()
    assert "admin" in roles
    assert users == 0


def test_flask_command_refuses_to_start_without_secret_key(tmp_path):
    """The secret-key check applies to ``flask`` commands too, with a message, not a hang."""
    env = flask_environment(tmp_path, tmp_path / "cli.sqlite3")
    del env["SECRET_KEY"]
    result = run_flask(env, "db", "current")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert not (tmp_path / "cli.sqlite3").exists()


def test_flask_create_admin_as_a_real_command(upgraded, tmp_path):
    """``flask create-admin`` as the operator runs it, on a copy of the upgraded database."""
    env, database, upgrade = upgraded
    assert upgrade.returncode == 0, upgrade.stderr
    copy = tmp_path / "copy.sqlite3"
    shutil.copyfile(database, copy)
    env = {**env, "DATABASE_URL": f"sqlite:///{copy}"}
    result = run_flask(env, "create-admin", "--username", "root", "--email", "root@example.com",
                       "--password", PASSWORD)
    assert result.returncode == 0, result.stderr
    assert "Created admin root <root@example.com>." in result.stdout
    again = run_flask(env, "create-admin", "--username", "ROOT", "--email", "x@example.com",
                      "--password", PASSWORD)
    assert again.returncode != 0
    assert "That username is taken." in again.stderr
    engine = create_engine(f"sqlite:///{copy}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT users.username, roles.name FROM users"
                " JOIN user_roles ON user_roles.user_id = users.id"
                " JOIN roles ON roles.id = user_roles.role_id")).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("root", "admin")]


def test_the_entry_point_freezes_what_it_built(upgraded):
    """wsgi.py leaves the import-time heap out of garbage collection (gc.freeze): a full
    collection then walks what requests left behind, not the whole app."""
    env, _database, _upgrade = upgraded
    probe = "import gc, wsgi; print(gc.get_freeze_count())"
    result = subprocess.run([sys.executable, "-c", probe], check=False, cwd=REPOSITORY_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) > 50_000
