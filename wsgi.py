"""Entry point for ``gunicorn wsgi:app`` and the ``flask`` command (found as ``wsgi.py``)."""

from blog import create_app

app = create_app()
