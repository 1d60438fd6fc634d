"""Read by `gunicorn wsgi:app` from the repository root; the settings are in
gunicorn_conf.py, which the installed package serves with:
`gunicorn -c python:datasources.gunicorn_conf datasources.wsgi:app`."""

from datasources.gunicorn_conf import *  # noqa: F403
