"""Writing the audit trail.

Admin services call :func:`record` inside their own transaction, after changing an object
and before the commit, so the event commits or rolls back with the change. :func:`diff`
reads the before/after of changed fields from SQLAlchemy's attribute history, so callers
need not copy values by hand. Order status changes from anywhere (the customer's cancel
button too) are recorded by listening to the shop's ``order_status_changed`` signal, which
is sent inside the transaction that moved the order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask_login import current_user
from sqlalchemy import insert, inspect

from blog.admin.models import ENTITY_ID_MAX, AuditEvent
from blog.extensions import db


def _plain(value: Any) -> Any:
    """A JSON-safe form of a column value."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple, set)):
        return [_plain(item) for item in value]
    if hasattr(value, "name") and not isinstance(value, (str, int, float, bool)):
        return value.name  # a Role, a Category
    return value


def diff(obj: Any, fields: tuple[str, ...] | None = None) -> dict[str, list[Any]]:
    """``{field: [before, after]}`` for the columns of ``obj`` changed in this transaction
    and not yet flushed (read from SQLAlchemy's attribute history)."""
    state = inspect(obj)
    changes: dict[str, list[Any]] = {}
    for attr in state.mapper.column_attrs:
        if fields is not None and attr.key not in fields:
            continue
        history = state.attrs[attr.key].history
        if history.has_changes():
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
            if before != after:
                changes[attr.key] = [_plain(before), _plain(after)]
    return changes


def record(entity_type: str, entity_id: Any, action: str, changes: dict[str, Any] | None = None,
           *, note: str = "", actor: Any = None) -> AuditEvent:
    """Add an audit event to the current transaction (the caller's service transaction)."""
    event = AuditEvent(**_event_values(entity_type, entity_id, action, changes, note=note, actor=actor))
    db.session.add(event)
    return event


def _event_values(entity_type: str, entity_id: Any, action: str, changes: dict[str, Any] | None,
                  *, note: str, actor: Any) -> dict[str, Any]:
    """An audit event's columns; the actor defaults to the logged-in member, if any."""
    if actor is None and current_user and current_user.is_authenticated:
        actor = current_user
    return {"actor_id": actor.id if actor is not None else None,
            "actor_name": actor.username if actor is not None else "",
            "entity_type": entity_type, "entity_id": str(entity_id), "action": action,
            "changes": {key: _plain(value) for key, value in (changes or {}).items()}, "note": note}


def record_order_status(sender: Any, order: Any, old: str, new: str, actor: Any = None,
                         **extra: Any) -> None:
    """Record an order's move (a listener of ``shop.orders.order_status_changed``, connected
    by ``blog.register_listeners``)."""
    record("order", order.number, "status", {"status": [old, new]}, actor=actor)




def record_catalog_import(sender: Any, changes: list[Any], **extra: Any) -> None:
    """Record every product and variant a CSV import created or changed (a listener of
    ``shop.catalog_io.catalog_imported``, connected by ``blog.register_listeners``). The
    ``flask import-products`` command has no logged-in member, so the actor is empty and
    the note says where the change came from."""
    # One executemany for the lot, not an ORM object per row: an import can change thousands.
    db.session.execute(insert(AuditEvent), [
        _event_values(change.entity_type, change.entity_id[:ENTITY_ID_MAX], change.action, change.changes,
                      note="CSV import", actor=None)
        for change in changes])


def record_refund(sender: Any, refund: Any, order: Any, actor: Any = None, **extra: Any) -> None:
    """Record a refund's outcome (a listener of ``payments.refunds.refund_settled``)."""
    changes = {"amount": str(refund.amount), "shipping": str(refund.shipping),
               "status": refund.status, "restock": refund.restock}
    if refund.error:
        changes["error"] = refund.error
    record("order", order.number, "refund", changes, note=refund.reason, actor=actor)
