"""How the application is put together: the bottom modules import nothing above them, every
cross-domain listener is connected by the factory (once), and service errors reach forms in
one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask_login import user_logged_in
from flask_wtf import FlaskForm
from sqlalchemy import delete, func, select
from wtforms import FieldList, StringField

from blog import create_app, register_listeners
from blog.accounts.models import ADMIN, Role, User
from blog.accounts.services import user_registered
from blog.admin import services as admin
from blog.admin.audit import record_order_status
from blog.errors import ServiceError
from blog.extensions import db
from blog.forms import show_error
from blog.shop.cart import create_member_cart
from blog.shop.models import Cart
from blog.shop.orders import order_status_changed
from blog.shop.views import merge_cart_on_login
from tests.conftest import dispose, make_config

BLOG = Path(__file__).resolve().parent.parent / "blog"
LISTENERS = [(user_registered, create_member_cart), (user_logged_in, merge_cart_on_login),
             (order_status_changed, record_order_status)]


def test_importing_the_extensions_loads_no_domain():
    code = ("import sys, blog.extensions; "
            "print(' '.join(m for m in sys.modules if m.startswith('blog')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=BLOG.parent, capture_output=True,
                            text=True, check=True, timeout=60)
    loaded = result.stdout.split()
    assert "blog.extensions" in loaded
    domains = ("blog.accounts", "blog.posts", "blog.shop", "blog.admin", "blog.cli", "blog.seed")
    assert [module for module in loaded if module.startswith(domains)] == []


@pytest.mark.parametrize("name", ["database.py", "database_session.py", "extensions.py"])
def test_the_bottom_modules_import_only_at_the_top(name):
    """A function-level import there would only be dodging an import cycle."""
    tree = ast.parse((BLOG / name).read_text())
    functions = [node for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = [(function.name, node.lineno) for function in functions for node in ast.walk(function)
              if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert nested == []


def test_the_database_module_imports_nothing_of_inkwell():
    tree = ast.parse((BLOG / "database.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [module for module in imported if module and module.split(".")[0] == "blog"]


def _receivers(app: Flask) -> list[tuple[str, object]]:
    return [(signal.name, receiver) for signal, receiver in LISTENERS
            if receiver in signal.receivers_for(app)]


def test_the_factory_connects_every_listener_for_its_app(app):
    assert len(_receivers(app)) == len(LISTENERS)


def _carts_of(username: str) -> int:
    return db.session.scalar(select(func.count()).select_from(Cart).join(User, User.id == Cart.user_id)
                             .where(User.username == username)) or 0


def test_connecting_again_does_not_fire_twice(app, make_user):
    counts = [len(list(signal.receivers_for(app))) for signal, _ in LISTENERS]
    register_listeners(app)
    assert [len(list(signal.receivers_for(app))) for signal, _ in LISTENERS] == counts
    make_user("twice")
    with app.app_context():
        assert _carts_of("twice") == 1


def test_a_second_app_in_the_process_has_its_own_listeners(app, database_url, make_user):
    other = create_app(make_config(database_url))
    try:
        assert len(_receivers(other)) == len(LISTENERS)
        make_user("first")  # in the fixture's app: its listeners fire, the other app's do not
        with app.app_context():
            assert _carts_of("first") == 1
    finally:
        dispose(other)


def test_granting_admin_without_the_admin_role_is_a_clear_error(app, make_user):
    member = make_user("bob")
    with app.test_request_context():
        db.session.execute(delete(Role).where(Role.name == ADMIN))
        db.session.commit()
        with pytest.raises(admin.AdminError, match="admin role is missing"):
            admin.set_admin(member, True)


class _Form(FlaskForm):
    class Meta:
        csrf = False

    name = StringField()
    rows = FieldList(StringField(), min_entries=1)


@pytest.mark.parametrize(("field", "default", "where"), [
    ("name", None, "name"),        # the field the service named
    (None, "name", "name"),        # else the view's default field
    (None, None, "form"),          # else above the form
    ("missing", None, "form"),     # a field this form does not have
    ("rows", None, "form"),        # a list of rows has no single place for a message
])
def test_show_error_puts_the_message_in_one_place(app, field, default, where):
    with app.test_request_context(method="POST", data={}):
        form = _Form()
        form.validate()
        show_error(form, ServiceError("Nope.", field), default)
        placed = {"name": list(form.name.errors), "form": list(form.form_errors)}
        assert placed.pop(where) == ["Nope."]
        assert all(messages == [] for messages in placed.values())
