"""``flask`` commands for the site's owners."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.datastructures import MultiDict

from blog.accounts import services as accounts
from blog.accounts.forms import RegisterForm
from blog.accounts.models import ADMIN


@click.command("create-admin")
@click.option("--username", required=True, help="Login name of the new admin.")
@click.option("--email", required=True, help="Email address of the new admin.")
@click.option("--password", help="Password (asked for, hidden, when not given).")
@with_appcontext
def create_admin(username: str, email: str, password: str | None) -> None:
    """Create a member with the admin role."""
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    # The registration form's rules apply here too, so the CLI cannot create what the site refuses.
    data = MultiDict({"username": username, "email": email, "password": password, "confirm": password})
    with current_app.test_request_context():
        form = RegisterForm(formdata=data, meta={"csrf": False})
        if not form.validate():
            problems = "; ".join(f"--{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            raise click.ClickException(problems)
    try:
        user = accounts.create_user(username, email, password, roles=(ADMIN,))
    except accounts.AccountError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"Created admin {user.username} <{user.email}>.")


def register(app: Flask) -> None:
    """Add the commands to ``app.cli``."""
    app.cli.add_command(create_admin)
