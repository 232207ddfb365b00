"""What admins do, each in one transaction together with its audit event.

These functions change the other domains' objects (orders through the shop's state machine,
members' roles and activity, comments, posts, discounts, shipping) and record the change with
:func:`blog.admin.audit.record` before the commit: the change and its trace commit, or roll
back, together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import current_app
from flask_login import current_user
from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from blog.accounts import services as accounts
from blog.accounts.models import ADMIN, ROLES, Role, User, lookup_key, user_roles
from blog.admin.audit import diff, record
from blog.admin.models import AuditEvent
from blog.database import contains_pattern
from blog.database_session import transaction
from blog.errors import ServiceError
from blog.extensions import db
from blog.mail import outbox
from blog.mail.models import EmailMessage, EmailStatus
from blog.newsletter import sending as newsletter_sending
from blog.newsletter import subscribers as newsletter
from blog.pages import services as pages
from blog.pages.models import Page, SiteSetting
from blog.pagination import Key, Ordering
from blog.posts.models import Comment, Post
from blog.shop import orders
from blog.shop.errors import ShopError
from blog.shop.models import (
    Discount,
    FixedAmountDiscount,
    Order,
    PercentageDiscount,
    ShippingMethod,
)


class AdminError(ServiceError):
    """An admin action that cannot be carried out; the message says why."""


# --- orders --------------------------------------------------------------------------------


#: The admin's growing lists, newest first (each served by an index on (created_at, id)).
NEWEST_ORDERS = Ordering(Key(Order.created_at), Key(Order.id))
NEWEST_COMMENTS = Ordering(Key(Comment.created_at), Key(Comment.id))
NEWEST_EVENTS = Ordering(Key(AuditEvent.created_at), Key(AuditEvent.id))


def order_list(status: str = "", q: str = "") -> Select[Any]:
    """Orders, newest first, optionally of one status and matching a number or customer
    (username, email or name on the address)."""
    stmt = select(Order).options(joinedload(Order.user)).order_by(Order.created_at.desc(),
                                                                   Order.id.desc())
    if status:
        stmt = stmt.where(Order.status == status)
    if q.strip():
        pattern = contains_pattern(q)
        stmt = stmt.outerjoin(User, User.id == Order.user_id).where(or_(
            Order.number.ilike(pattern, escape="\\"), Order.full_name.ilike(pattern, escape="\\"),
            User.username.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\")))
    return stmt


def move_order(order: Order, new_status: str) -> None:
    """Move an order through the shop's state machine (recorded by the audit listener)."""
    try:
        orders.change_status(order, new_status, actor=current_user._get_current_object())
    except ShopError as error:
        raise AdminError(error.message) from error


# --- members -------------------------------------------------------------------------------


def member_list(q: str = "") -> Select[Any]:
    stmt = select(User).options(selectinload(User.roles)).order_by(User.created_at.desc(),
                                                                     User.id.desc())
    if q.strip():
        pattern = contains_pattern(lookup_key(q))
        stmt = stmt.where(or_(User.username_key.like(pattern, escape="\\"),
                              User.email_key.like(pattern, escape="\\")))
    return stmt


def _locked_admin_role(session: Session) -> Role:
    """The admin role row, locked until the transaction ends (PostgreSQL; SQLite's BEGIN
    IMMEDIATE already serializes writers). Every change that can take away an active admin
    takes this lock first, so two of them never both count the admins before either writes."""
    role = session.scalar(select(Role).where(Role.name == ADMIN).with_for_update())
    if role is None:  # made by the first migration; missing only if deleted by hand
        raise AdminError("The admin role is missing from the database; run `flask db upgrade`.")
    return role


def _holds(session: Session, member: User, role: Role) -> bool:
    return bool(session.scalar(select(func.count()).select_from(user_roles).where(
        user_roles.c.user_id == member.id, user_roles.c.role_id == role.id)))


def _refuse_last_admin(session: Session, member: User, role: Role) -> None:
    """Refuse to take ``member`` out of the active admins when no other active admin is left
    (the site would have nobody left to run it)."""
    others = session.execute(select(func.count()).select_from(user_roles)
                             .join(User, User.id == user_roles.c.user_id)
                             .where(user_roles.c.role_id == role.id, User.active.is_(True),
                                    User.id != member.id)).scalar_one()
    if others == 0:
        if current_user and member.id == current_user.id:
            raise AdminError("You are the last admin; make someone else an admin first.")
        raise AdminError(f"{member.username} is the last admin; make someone else an admin first.")


def set_role(member: User, role_name: str, grant: bool) -> None:
    """Grant or revoke a role (author, editor or admin), audited. The last active admin keeps
    the admin role, however many admins revoke at once (the admin role row is locked while
    the admins are counted)."""
    if role_name not in ROLES:
        raise AdminError(f"There is no role {role_name!r}; the roles are {', '.join(ROLES)}.")
    with transaction() as session:
        if role_name == ADMIN:
            role = _locked_admin_role(session)
        else:
            found = session.scalar(select(Role).where(Role.name == role_name))
            if found is None:  # made by the 0009_roles migration
                raise AdminError(f"The {role_name} role is missing; run `flask db upgrade`.")
            role = found
        if grant == _holds(session, member, role):
            return
        if not grant:
            if role_name == ADMIN and member.active:
                _refuse_last_admin(session, member, role)
            session.execute(delete(user_roles).where(user_roles.c.user_id == member.id,
                                                     user_roles.c.role_id == role.id))
        else:
            session.execute(user_roles.insert().values(user_id=member.id, role_id=role.id))
        record("user", member.username, f"{'grant' if grant else 'revoke'}_{role_name}",
               {role_name: [not grant, grant]})
    session.expire(member, ["roles"])


def set_admin(member: User, grant: bool) -> None:
    """Grant or revoke the admin role (see :func:`set_role`)."""
    set_role(member, ADMIN, grant)


def set_member_active(member: User, active: bool) -> None:
    """Deactivate (their logins end at once) or reactivate a member; never yourself, and never
    the last active admin."""
    if member.id == current_user.id and not active:
        raise AdminError("You cannot deactivate your own account.")
    with transaction() as session:
        if not active:
            role = _locked_admin_role(session)
            # Re-read under the lock: another admin may have changed the member meanwhile.
            session.refresh(member, ["active"])
            if member.active and _holds(session, member, role):
                _refuse_last_admin(session, member, role)
        if member.active == active:
            return
        record("user", member.username, "reactivate" if active else "deactivate",
               {"active": [member.active, active]})
        accounts.set_active(member, active)


# --- moderation ----------------------------------------------------------------------------


def recent_comments() -> Select[Any]:
    return select(Comment).options(joinedload(Comment.author), joinedload(Comment.post)).order_by(
        Comment.created_at.desc(), Comment.id.desc())


def delete_comment(comment: Comment) -> None:
    with transaction() as session:
        record("comment", comment.id, "delete",
               {"body": [comment.body[:500], None], "post": [comment.post.slug, None]})
        session.delete(comment)


def recent_posts() -> Select[Any]:
    return select(Post).options(joinedload(Post.author)).order_by(Post.created_at.desc(),
                                                                    Post.id.desc())


def unpublish_post(post: Post) -> None:
    """Take a post off the site (it becomes its author's draft again)."""
    with transaction() as session:
        # The latest committed row, locked on PostgreSQL: the author may have edited the post
        # since this request read it, and the versioned UPDATE would refuse an older copy.
        current = session.scalar(select(Post).where(Post.id == post.id)
                                 .execution_options(populate_existing=True).with_for_update())
        if current is None:
            raise AdminError("That post has been deleted.")
        if not current.published:
            raise AdminError("That post is not published.")
        current.published = False
        record("post", current.slug, "unpublish", diff(current, ("published",)))


# --- discounts and shipping ------------------------------------------------------------------


def _save(entity_type: str, obj: Any, values: dict[str, Any], *, new: bool, key: str,
          taken: str) -> Any:
    """Apply ``values`` to ``obj`` (adding it when ``new``) and record the change; a value
    another row already has (the unique ``key``) becomes an AdminError on that field."""
    try:
        with transaction() as session:
            for name, value in values.items():
                setattr(obj, name, value)
            changes = diff(obj)
            if new:
                session.add(obj)
            session.flush()
            if changes:
                record(entity_type, getattr(obj, key), "create" if new else "update", changes)
    except IntegrityError as error:  # the rollback also took a new object out of the session
        raise AdminError(taken, key) from error
    return obj


@dataclass(frozen=True)
class DiscountValues:
    """A discount code as the admin form gives it: ``value`` is the percent off for the
    ``"percentage"`` kind and the amount off for ``"fixed"``."""

    code: str
    kind: str
    value: Decimal
    active: bool
    starts_at: datetime | None
    ends_at: datetime | None
    usage_limit: int | None
    min_subtotal: Decimal | None
    per_customer_limit: int | None = None


def discount_list() -> list[Discount]:
    """Every discount code, by code (few enough for one page)."""
    return list(db.session.scalars(select(Discount).order_by(Discount.code)))


def save_discount(discount: Discount | None, values: DiscountValues) -> Discount:
    """Create (``discount`` None) a code of the subclass its kind names, or edit one.

    Raises AdminError, changing nothing, when an existing code would change kind (the kind
    is the row's subclass) or another code has the same text.
    """
    percentage = values.kind == "percentage"
    if discount is not None and discount.kind != values.kind:
        raise AdminError("The kind of an existing code cannot change; make a new code.", "kind")
    target = discount
    if target is None:
        target = PercentageDiscount() if percentage else FixedAmountDiscount()
    columns = {name: value for name, value in asdict(values).items() if name not in ("kind", "value")}
    columns |= {"percent": values.value if percentage else None,
                "amount": None if percentage else values.value}
    return _save("discount", target, columns, new=discount is None, key="code",
                 taken="Another discount already has that code.")


@dataclass(frozen=True)
class ShippingValues:
    """A shipping method as the admin form gives it."""

    name: str
    price: Decimal
    active: bool


def shipping_methods() -> list[ShippingMethod]:
    """Every shipping method, active or not, cheapest first."""
    return list(db.session.scalars(select(ShippingMethod).order_by(ShippingMethod.price)))


def save_shipping(method: ShippingMethod | None, values: ShippingValues) -> ShippingMethod:
    """Create (``method`` None) or edit a shipping method; a name another method has is an
    AdminError on ``name``."""
    return _save("shipping", method or ShippingMethod(), asdict(values), new=method is None,
                 key="name", taken="Another shipping method already has that name.")


# --- pages and site settings ----------------------------------------------------------------


def save_page(page: Page | None, title: str, slug: str, body: str, place: str,
              position: int) -> Page:
    """Create (``page`` None) or edit a page, audited; the cached navigation and footer are
    forgotten after the commit. A slug another page has is an AdminError on ``slug``."""
    try:
        content = pages.prepare_page(title, slug, body, place, position)
    except pages.PageError as error:
        raise AdminError(error.message, error.field) from error
    target = page or Page()
    values = {"title": content.title, "slug": content.slug, "body": content.body,
              "body_html": content.body_html, "excerpt": content.excerpt,
              "place": content.place, "position": content.position}
    saved = _save("page", target, values, new=page is None, key="slug",
                  taken="Another page has that address.")
    pages.forget_site()
    return saved


def delete_page(page: Page) -> None:
    """Delete a page (its address answers 404 from now on), audited."""
    with transaction() as session:
        session.execute(delete(Page).where(Page.id == page.id))
        record("page", page.slug, "delete", {"title": [page.title, None]})
    pages.forget_site()


def save_settings(values: dict[str, str]) -> dict[str, list[str]]:
    """Store the site settings an admin changed, audited, and return what changed
    (``{key: [before, after]}``). A value equal to the configuration's default is not
    stored, so the default applies again (and a later change of it too).

    Raises AdminError (changing nothing) for social links that are not "Label address" lines.
    """
    try:
        pages.parse_social_links(values.get("social_links", ""))
    except pages.PageError as error:
        raise AdminError(error.message, error.field) from error
    config = current_app.config
    try:
        changes = _store_settings(values, config)
    except IntegrityError as error:  # another admin added the same setting a moment before
        raise AdminError("Another admin saved the settings at the same moment; "
                         "please look at them again and save.") from error
    pages.forget_site()
    return changes


def _store_settings(values: dict[str, str], config: Any) -> dict[str, list[str]]:
    with transaction() as session:
        before = pages.setting_values()
        changes = {key: [before[key], values[key]] for key in pages.SETTINGS
                   if key in values and values[key] != before[key]}
        for key in changes:
            default = str(config.get(pages.SETTINGS[key]) or "")
            row = session.get(SiteSetting, key)
            if values[key] == default:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(SiteSetting(key=key, value=values[key]))
            else:
                row.value = values[key]
        if changes:
            session.flush()
            record("settings", "site", "update", changes)
    return changes


# --- the newsletter ---------------------------------------------------------------------------


def import_subscribers(rows: list[dict[str, str]], *, opted_in: bool) -> newsletter.ImportResult:
    """Import subscribers (see :func:`blog.newsletter.subscribers.import_rows`), audited."""
    result = newsletter.import_rows(rows, opted_in=opted_in)
    with transaction():
        record("newsletter", "subscribers", "import",
               {"added": result.added, "updated": result.updated, "skipped": len(result.skipped),
                "opted_in": opted_in})
    return result


def send_test_newsletter(post: Post, admin: User) -> None:
    """The newsletter of ``post`` to the admin's own address, through the outbox."""
    with transaction():
        outbox.queue_email("newsletter_test", admin.email, f"[Test] {post.title}", "newsletter",
                           **newsletter_sending.test_context(post))


# --- the audit trail -------------------------------------------------------------------------

ENTITY_TYPES = ("order", "product", "variant", "user", "comment", "post", "discount", "shipping",
                "email", "page", "settings", "newsletter")


def audit_events(entity_type: str = "") -> Select[Any]:
    stmt = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if entity_type:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    return stmt


# --- the outbox --------------------------------------------------------------------------------


def email_list(status: str = "", q: str = "") -> Select[Any]:
    """Outbox messages, newest first, optionally of one status and to a matching address."""
    stmt = select(EmailMessage).order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
    if status:
        stmt = stmt.where(EmailMessage.status == status)
    if q.strip():
        stmt = stmt.where(EmailMessage.recipient.ilike(contains_pattern(q), escape="\\"))
    return stmt


def resend_email(message: EmailMessage) -> EmailMessage:
    """Send a message again (see :func:`blog.mail.outbox.resend`), audited; returns the
    message that will go (a copy when it had been sent)."""
    if message.status == EmailStatus.SENDING:
        raise AdminError("A worker is sending this message right now; look again in a minute.")
    before = message.status
    with transaction():
        sent = outbox.resend(message)
        record("email", message.id, "resend", {"status": [before, EmailStatus.QUEUED]},
                     note=f"{message.kind} to {message.recipient}"
                          + (f" as message {sent.id}" if sent.id != message.id else ""))
    return sent
