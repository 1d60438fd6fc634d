"""The WSGI entry point: `gunicorn wsgi:app` (installed: `datasources.wsgi:app`)."""

if __package__:
    from .app import create_app
else:
    from app import create_app

app = create_app()
