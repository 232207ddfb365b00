"""The payments' periodic work in ``flask worker``: closing unpaid online orders."""

from __future__ import annotations

import logging

from huey import crontab

from blog.extensions import db
from blog.jobs import periodic
from blog.payments.services import expire_unpaid

log = logging.getLogger("inkwell.payments")


@periodic(crontab(minute="*"))
def expire_unpaid_orders() -> None:
    """Every minute: cancel and restock the online orders whose payment window has passed
    (:func:`blog.payments.services.expire_unpaid`; ``flask orders expire-unpaid`` does the same)."""
    count = expire_unpaid()
    if count:
        log.info("cancelled %s unpaid orders past their payment window", count)
    db.session.remove()
