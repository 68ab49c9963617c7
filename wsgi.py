"""The WSGI entry point for any server: `gunicorn wsgi:app`."""

from coalition import create_app

app = create_app()
