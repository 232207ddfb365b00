"""Errors: what a service raises when it cannot do what was asked, and the HTML error pages
(friendly, never a traceback)."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, RequestEntityTooLarge

from blog.extensions import db
from blog.text import describe_bytes

log = logging.getLogger("inkwell.errors")


class ServiceError(Exception):
    """A request a service cannot carry out, changing nothing; ``message`` is for the person
    who asked, ``field`` names the form field it is about (None: the form as a whole).

    Each domain subclasses it (``AccountError``, ``BlogError``, ``ShopError``,
    ``AdminError``), so a view catches its own domain's failures; :func:`blog.forms.show_error`
    puts one on a form.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

class ExplainedBadRequest(BadRequest):
    """A 400 whose message is written for the reader (the stock text would not say what to do)."""

    def __init__(self, reader_message: str) -> None:
        super().__init__(reader_message)
        self.reader_message = reader_message


MESSAGES = {
    400: "The request could not be understood. Please go back and try again.",
    403: "You do not have permission to do that.",
    404: "There is nothing here. The page may have moved or never existed.",
    405: "That page does not accept this kind of request.",
    413: "What you sent is too large.",
    429: "Too many requests. Please wait a little and try again.",
    500: "Something went wrong on our side. It has been logged; please try again later.",
}


FALLBACK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{code} {title}</title></head>
<body><h1>{title}</h1><p>{message}</p><p><a href="/">Home</a></p></body></html>"""


def render_error(error: HTTPException, *, title: str | None = None,
                 message: str | None = None) -> tuple[str, int, list[tuple[str, str]]]:
    """Render ``templates/errors/error.html`` for an HTTP error, keeping its status code and
    its headers (``Allow`` on a 405, ``Retry-After`` on a 429).

    When the page itself cannot be rendered (the layout asks the database for the current
    user, and the database may be what failed), a plain page without the layout is sent.
    """
    code = error.code or 500
    title = title or error.name
    g.error_page = True  # no canonical link: an error is not a page to index
    message = message or getattr(error, "reader_message", None) or MESSAGES.get(code, error.description)
    headers = [(name, value) for name, value in error.get_headers() if name != "Content-Type"]
    try:
        html = render_template("errors/error.html", code=code, title=title, message=message)
    except Exception:
        log.exception("could not render the %s page", code)
        db.session.rollback()
        html = FALLBACK_PAGE.format(code=code, title=escape(title), message=escape(message))
    return html, code, headers


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> tuple[str, int, list[tuple[str, str]]]:
        return render_error(error, title="Form expired", message=(
            "This form has expired or did not come from this site. "
            "Please reload the page and submit it again."))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int, list[tuple[str, str]]]:
        # Flask passes routing redirects (308) through before handlers, so only errors land here.
        return render_error(error)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[str, int, list[tuple[str, str]]]:
        # The body was not read, so the form cannot be shown again with what was typed; the
        # browser's Back keeps it, and the limits say what to change.
        config = app.config
        limit = describe_bytes(int(config["MAX_CONTENT_LENGTH"]))
        image = describe_bytes(int(config["UPLOAD_MAX_BYTES"]))
        return render_error(error, title="Too large", message=(
            f"What you sent is too large: this site accepts up to {limit} at once, and "
            f"images of up to {image} each. Go back (your browser keeps what you typed) and "
            "choose a smaller file."))

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError) -> tuple[str, int, list[tuple[str, str]]]:
        # The failed request may have left the session mid-transaction; rendering the page
        # (which may query, e.g. for the current user) must not run inside it.
        db.session.rollback()
        return render_error(error)
