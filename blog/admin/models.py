"""The audit trail: who changed what, when, from what to what."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blog.accounts.models import User
from blog.database import utcnow
from blog.extensions import Model

#: The longest entity id stored: a variant without a SKU is its product's slug (220), a
#: slash and its label (80).
ENTITY_ID_MAX = 320


class AuditEvent(Model):
    """One change by an admin (or to an order's status), written in the same transaction as
    the change itself, so the trail can neither miss a change nor record one that rolled back.

    ``changes`` maps each changed field to ``[before, after]``; ``actor_name`` keeps the
    name even if the member is later deleted.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity_type_created_at_id", "entity_type", "created_at", "id"),
        Index("ix_audit_events_created_at_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(String(32), default="")
    entity_type: Mapped[str] = mapped_column(String(40))
    # What names the entity, copied from it: the longest is a variant without SKU,
    # "<product slug (220)>/<label (80)>"; a post's or product's slug is 220, a shipping name 80.
    entity_id: Mapped[str] = mapped_column(String(ENTITY_ID_MAX))
    action: Mapped[str] = mapped_column(String(40))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"<AuditEvent {self.entity_type}:{self.entity_id} {self.action}>"
