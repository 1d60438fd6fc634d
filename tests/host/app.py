"""A host app as a team would write one, with the data sources API mounted
in it: its own models and migrations (Flask-SQLAlchemy, Flask-Migrate) on
the database it shares with the API, session login, request hooks, 404
page, `/docs` page and CLI.

    FLASK_APP=app flask db init|migrate|upgrade    the host's own tables
    FLASK_APP=app flask datasources db upgrade     the API's tables
    FLASK_APP=app flask users add NAME --tenant T --role R

Settings: FLASK_SQLALCHEMY_DATABASE_URI and FLASK_SECRET_KEY (Flask's
prefixed environment), DATASOURCES_* (the API's) from the environment.
"""

import os

import click
from flask import Flask, g, redirect, request, session
from flask_migrate import Migrate

import datasources.models
import datasources.settings
from datasources.app import init_app
from models import Note, User, db  # the host's own models.py, not ours


def create_app(
    test_config=None,
    instance_path=None,
    url_prefix="/platform/data-sources",
    **datasources_options,
):
    """The host; `url_prefix` and `datasources_options` (docs_url, ...) go to `init_app`."""
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY="dev", SQLALCHEMY_DATABASE_URI="sqlite:///host.db")
    app.config.from_prefixed_env()
    app.config.update(datasources.settings.from_environ(os.environ))
    app.config.update(test_config or {})
    db.init_app(app)
    # Our autogenerate must leave the API's tables alone: they share our database.
    Migrate(app, db, include_name=datasources.models.include_name)
    add_host_routes(app)
    init_app(app, url_prefix=url_prefix, identity=current_identity, **datasources_options)
    return app


def current_identity():
    """The API's identity: the logged-in user's tenant and role, or None (401)."""
    user = g.user
    return (user.tenant_id, user.role) if user else None


def add_host_routes(app):
    @app.before_request
    def load_user():
        user_id = session.get("user_id")
        g.user = db.session.get(User, user_id) if user_id is not None else None

    @app.after_request
    def mark_response(response):
        response.headers["X-Host"] = "platform"
        return response

    @app.errorhandler(404)
    def not_found(exc):
        return "<h1>Platform: page not found</h1>", 404

    @app.get("/")
    def home():
        return f"Hello, {g.user.name if g.user else 'guest'}"

    @app.post("/login")
    def login():
        user = db.session.execute(
            db.select(User).filter_by(name=request.form["name"])
        ).scalar_one_or_none()
        if user is None:
            return "Unknown user", 403
        session["user_id"] = user.id
        return redirect("/")

    @app.post("/logout")
    def logout():
        session.clear()
        return redirect("/")

    @app.get("/notes")
    def notes():
        return [note.text for note in db.session.execute(db.select(Note)).scalars()]

    @app.post("/notes")
    def add_note():
        db.session.add(Note(text=request.form["text"]))
        db.session.commit()
        return "", 201

    @app.get("/docs")
    def docs():
        return "<h1>Platform docs</h1>"

    @app.cli.command("hello")
    def hello():
        """A command that has nothing to do with any database."""
        click.echo("hello from the platform")

    @app.cli.group("users")
    def users():
        """The platform's users."""

    @users.command("add")
    @click.argument("name")
    @click.option("--tenant", required=True)
    @click.option("--role", required=True)
    def add_user(name, tenant, role):
        db.session.add(User(name=name, tenant_id=tenant, role=role))
        db.session.commit()
        click.echo(f"added {name}")
