"""``flask`` commands for the site's owners."""

from __future__ import annotations

import logging
import secrets
import sys
import time
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from werkzeug.datastructures import MultiDict

from blog import jobs
from blog import seed as seeding
from blog.accounts import services as accounts
from blog.accounts.forms import RegisterForm
from blog.accounts.models import ADMIN, ROLES
from blog.admin import services as admin_services
from blog.posts import services as posts
from blog.shop import catalog_io

#: Files with more data rows than this get a progress bar while importing.
PROGRESS_THRESHOLD = 1000


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


@click.command("import-products")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def import_products(file: Path) -> None:
    """Create or update products and variants from a CSV FILE.

    Columns: slug,name,description,category,active,variant,sku,price,stock (one row per
    variant). Bad rows are skipped and listed with their line numbers; the rest are saved.
    """
    try:
        # utf-8-sig: a byte-order mark (as spreadsheet programs write) is dropped.
        with open(file, encoding="utf-8-sig", newline="") as handle:
            rows = catalog_io.read_csv(handle)
    except OSError as error:
        raise click.ClickException(f"Cannot read {file}: {error.strerror or error}") from error
    except catalog_io.CatalogFileError as error:
        raise click.ClickException(f"{file}: {error.message}") from error
    if len(rows) > PROGRESS_THRESHOLD:
        # On stderr, so stdout carries only the report; click draws no bar when stderr is
        # not a terminal (it prints the label once).
        with click.progressbar(length=len(rows), label="Importing products",
                               file=sys.stderr) as bar:
            result = catalog_io.import_rows(rows, progress=bar.update)
    else:
        result = catalog_io.import_rows(rows)
    click.echo(result.summary)
    for line, reason in result.skipped:
        click.echo(f"line {line}: {reason}")


@click.command("export-products")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_products(file: Path) -> None:
    """Write every product (active or not) to a CSV FILE, one row per variant, in the
    format import-products reads."""
    try:
        with open(file, "w", encoding="utf-8", newline="") as handle:
            result = catalog_io.export_products(handle)
    except OSError as error:
        raise click.ClickException(f"Cannot write {file}: {error.strerror or error}") from error
    click.echo(f"Exported {result.rows} variants of {result.products} products to {file}.")
    if result.without_variants:
        click.echo(f"Left out {result.without_variants} products without variants.")


@click.command("seed")
@click.option("--users", type=click.IntRange(min=2), default=seeding.SeedSizes.users, show_default=True,
              help="Members, counting the demo admin and the demo member.")
@click.option("--posts", type=click.IntRange(min=0), default=seeding.SeedSizes.posts, show_default=True,
              help="Blog posts (a few of them drafts), with tags, comments and likes.")
@click.option("--products", type=click.IntRange(min=0), default=seeding.SeedSizes.products,
              show_default=True, help="Products, each with one or more variants.")
@click.option("--orders", type=click.IntRange(min=0), default=seeding.SeedSizes.orders, show_default=True,
              help="Past orders, in every status.")
@click.option("--seed", "seed", type=click.IntRange(min=0), default=None,
              help="Random seed: the same seed gives the same data. Default: a random one (printed).")
@click.option("--admin-password", default=seeding.DEMO_PASSWORD, show_default=True,
              help="Password of the demo admin (every other demo member gets the default).")
@click.option("--force", is_flag=True, help="Add demo data to a site that already has data.")
@click.option("--if-empty", is_flag=True,
              help="Seed only an empty site; otherwise just print the demo logins that still work "
                   "(what `make run` does at every start).")
@with_appcontext
def seed_command(users: int, posts: int, products: int, orders: int, seed: int | None,
                 admin_password: str, force: bool, if_empty: bool) -> None:
    """Fill the site with realistic demo data: members, posts, comments, tags, likes,
    follows, products with variants and stock, shipping methods, a discount code and past
    orders in every status. Refuses a site that already has data unless --force is given."""
    if force and if_empty:
        raise click.UsageError("--force and --if-empty contradict each other.")
    if if_empty and seeding.site_has_data():
        # make run's every start: say how to log in, if the demo logins still work.
        click.echo("The site already has data; not seeding.")
        admin, member = seeding.DEMO_ADMIN, seeding.DEMO_MEMBER
        editor, author = seeding.demo_writers()

        def works(name: str | None, password: str = seeding.DEMO_PASSWORD) -> str | None:
            return name if name and seeding.demo_login_works(name, password) else None

        for line in seeding.login_lines(works(admin, admin_password), admin_password,
                                        works(member), seeding.DEMO_PASSWORD,
                                        editor=works(editor), author=works(author)):
            click.echo(line)
        return
    if seed is None:
        seed = secrets.randbelow(1_000_000)
    sizes = seeding.SeedSizes(users=users, posts=posts, products=products, orders=orders)
    started = time.perf_counter()
    try:
        with seeding.slow_statement_log_quieted():
            if sizes.items > seeding.PROGRESS_THRESHOLD:
                # On stderr, like import-products: stdout carries only the report.
                with click.progressbar(length=sizes.items, label="Seeding", file=sys.stderr) as bar:
                    result = seeding.seed_site(sizes, seed=seed, admin_password=admin_password,
                                               force=force, progress=bar.update)
            else:
                result = seeding.seed_site(sizes, seed=seed, admin_password=admin_password,
                                           force=force)
    except seeding.SeedError as error:
        raise click.ClickException(error.message) from error
    for line in result.summary(elapsed=time.perf_counter() - started):
        click.echo(line)


@click.command("rerender-posts")
@with_appcontext
def rerender_posts_command() -> None:
    """Render every post's Markdown again with this version's renderer.

    Run it once after an upgrade whose notes say the rendering changed; it is safe to run
    at any time, and while the site serves.
    """
    changed = posts.rerender_posts()
    click.echo(f"Re-rendered {changed} post{'' if changed == 1 else 's'} whose HTML changed.")


def _role_command(grant: bool) -> click.Command:
    verb = "grant" if grant else "revoke"

    @click.command(f"{verb}-role")
    @click.argument("username")
    @click.argument("role", type=click.Choice(ROLES))
    @with_appcontext
    def command(username: str, role: str) -> None:
        member = accounts.get_user_by_username(username)
        if member is None:
            raise click.ClickException(f"There is no member called {username!r}.")
        try:
            admin_services.set_role(member, role, grant)
        except admin_services.AdminError as error:
            raise click.ClickException(error.message) from error
        click.echo(f"{member.username} {'now holds' if grant else 'no longer holds'} the {role} role.")

    command.help = (f"{verb.capitalize()} ROLE (author, editor or admin) {'to' if grant else 'from'} "
                    "the member USERNAME; audited like the admin page.")
    return command


grant_role = _role_command(grant=True)
revoke_role = _role_command(grant=False)


@click.command("worker")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Threads running jobs (default: JOBS_WORKERS).")
@with_appcontext
def worker_command(workers: int | None) -> None:
    """Run the background jobs: mail delivery, newsletter sends and the periodic tasks (the
    sweeps of the outbox and the newsletter, the payment window).

    Run one beside the web server (`make run` does); in production, a second service
    (deploy/inkwell-worker.service). Ctrl-C or SIGTERM finishes the running jobs and stops.
    """
    if jobs.huey.immediate:
        raise click.ClickException("JOBS_IMMEDIATE is on: every job runs where it is asked "
                                   "for, so there is nothing for a worker to do.")
    logging.basicConfig(level=current_app.config["LOG_LEVEL"],
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    count = workers or int(current_app.config["JOBS_WORKERS"])
    click.echo(f"Worker: {count} thread(s), jobs in {jobs.storage_name()}.")
    consumer = jobs.huey.create_consumer(
        workers=count, worker_type="thread", periodic=True, check_worker_health=True,
        # An idle worker looks at a SQLite queue at least this often (Redis wakes it at once).
        max_delay=float(current_app.config["JOBS_POLL_MAX_DELAY"]))
    # A worker (re)started picks up at once what a stopped one left: claims past their
    # timeout, messages due, newsletter sends to carry on (the sweeps run every minute too).
    from blog.mail.delivery import sweep_outbox
    from blog.newsletter.sending import newsletter_sweep

    for sweep in (sweep_outbox, newsletter_sweep):
        sweep()
    consumer.run()


@click.group("orders")
def orders_group() -> None:
    """Orders: payment windows."""


@orders_group.command("expire-unpaid")
@with_appcontext
def expire_unpaid_command() -> None:
    """Cancel and restock online orders whose payment window has passed (the worker does it
    every minute too)."""
    from blog.payments.services import expire_unpaid

    count = expire_unpaid()
    click.echo(f"Cancelled {count} unpaid order{'s' if count != 1 else ''} past the payment window.")


def register(app: Flask) -> None:
    """Add the commands to ``app.cli``."""
    app.cli.add_command(create_admin)
    app.cli.add_command(orders_group)
    app.cli.add_command(import_products)
    app.cli.add_command(export_products)
    app.cli.add_command(seed_command)
    app.cli.add_command(rerender_posts_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(grant_role)
    app.cli.add_command(revoke_role)
