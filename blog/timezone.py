"""The site's timezone (``SITE_TIMEZONE``): times are stored in UTC and shown, or typed, in it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app


def site_zone() -> ZoneInfo:
    """The zone of ``SITE_TIMEZONE`` ("UTC", "Europe/Lisbon" ...)."""
    return ZoneInfo(current_app.config["SITE_TIMEZONE"])


def to_site_time(moment: datetime) -> datetime:
    """A stored (UTC) time as the site's local time."""
    return moment.astimezone(site_zone())


def from_site_time(local: datetime) -> datetime:
    """A time typed in the site's zone (naive, as a form gives it) as an aware UTC time. In
    the hour a clock goes back, the earlier of the two moments is meant."""
    return local.replace(tzinfo=site_zone()).astimezone(UTC)


def check_site_timezone(app: Flask) -> str | None:
    """A problem with ``SITE_TIMEZONE`` for the factory to refuse, or None."""
    name = app.config.get("SITE_TIMEZONE")
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return f"SITE_TIMEZONE must be a zone such as UTC or Europe/Lisbon, not {name!r}."
    return None


def register(app: Flask) -> None:
    """``{{ post.published_at|site_time }}``: "3 December 2026, 09:00 CET"."""

    @app.template_filter("site_time")
    def site_time(moment: datetime | None, format: str = "%-d %B %Y, %H:%M %Z") -> str:
        return to_site_time(moment).strftime(format) if moment is not None else ""
