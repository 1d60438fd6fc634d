"""The WSGI entry point: `gunicorn wsgi:app` at the repository root; installed,
`gunicorn -c python:datasources.gunicorn_conf datasources.wsgi:app`."""

from datasources.app import create_app

app = create_app()
