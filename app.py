"""The Data Sources API: a Flask blueprint, its app factory and its CLI.

Reads top to bottom: settings, views, probes, CLI, then `init_app`
(embedding) and `create_app` (standalone). Errors are in errors.py,
identity in auth.py, request bodies, query strings and cursors in inputs.py.
"""

import datetime
import os

import click
import jwt
import peewee
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import Blueprint, Config, Flask, current_app, g, request
from flask.cli import AppGroup
from orjson import Fragment
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Rule

if __package__:  # installed as the `datasources` package (see pyproject.toml)
    from . import connections, models, observability, openapi
    from .auth import (
        ROLES,
        authorize,
        header_identity,
        instance_secret,
        jwt_identity,
        public_key_algorithm,
        settings,
    )
    from .errors import Problem, http_problem, register_handlers, respond
    from .inputs import json_body, load_query, read_cursor, write_cursor
    from .models import DataSource, TenantCount, db, write_transaction
    from .schemas import (
        delete_query_schema,
        list_query_schema,
        source_schema,
        update_source_schema,
    )
else:  # run from the repository root: `gunicorn wsgi:app`, `flask --app app`
    import connections
    import models
    import observability
    import openapi
    from auth import (
        ROLES,
        authorize,
        header_identity,
        instance_secret,
        jwt_identity,
        public_key_algorithm,
        settings,
    )
    from errors import Problem, http_problem, register_handlers, respond
    from inputs import json_body, load_query, read_cursor, write_cursor
    from models import DataSource, TenantCount, db, write_transaction
    from schemas import (
        delete_query_schema,
        list_query_schema,
        source_schema,
        update_source_schema,
    )

PREFIX = "/api/v1/data-sources"
DEFAULTS = {
    "DATABASE_URL": None,  # None: an SQLite file in the instance folder
    "AUTO_MIGRATE": None,  # None: yes on SQLite, no elsewhere
    "AUTH": "jwt",  # or "headers", behind a trusted gateway
    "JWT_SECRET": None,  # None: a random secret kept in the instance folder
    "JWT_PUBLIC_KEY": None,  # PEM; RS256 or ES256, and then no HS256 at all
    "JWT_AUDIENCE": None,
    "JWT_ISSUER": None,
    "JWT_TENANT_CLAIM": "tenant_id",
    "JWT_ROLE_CLAIM": "role",
    "CURSOR_SECRET": None,  # None: the JWT secret or the instance secret
    "MAX_BODY_BYTES": 1024 * 1024,
    "SQLITE_BUSY_TIMEOUT_MS": 5000,
    "STATEMENT_TIMEOUT_MS": 5000,  # PostgreSQL; 0: none
    "RETRY_AFTER_SECONDS": 5,
    "ANSWER_CACHE_BYTES": 4 * 1024 * 1024,  # list answers kept per worker; 0: none
}
METHODS = ["GET", "POST", "PUT", "DELETE"]

bp = Blueprint("datasources", __name__)
register_handlers(bp)


def flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


class State:
    """One app's settings, resolved once by `init_app`."""

    def __init__(self, app, config, identity=None):
        self.max_body_bytes = int(config["MAX_BODY_BYTES"])
        self.retry_after = int(config["RETRY_AFTER_SECONDS"])
        self.tenant_claim = config["JWT_TENANT_CLAIM"]
        self.role_claim = config["JWT_ROLE_CLAIM"]
        self.jwt_audience = config["JWT_AUDIENCE"] or None
        self.jwt_issuer = config["JWT_ISSUER"] or None
        if config["JWT_PUBLIC_KEY"]:
            self.jwt_secret = None
            self.jwt_key = load_pem_public_key(config["JWT_PUBLIC_KEY"].encode())
            self.jwt_algorithms = [public_key_algorithm(self.jwt_key)]
        else:
            self.jwt_secret = str(config["JWT_SECRET"] or instance_secret(app))
            self.jwt_key, self.jwt_algorithms = self.jwt_secret, ["HS256"]
        self.cursor_secret = str(config["CURSOR_SECRET"] or self.jwt_secret or instance_secret(app))
        self.verified_tokens = {}  # token -> (expiry, claims); see jwt_identity
        self.answers = {}  # (source id, row version) -> answer JSON; see page_answers
        self.answers_size, self.answers_budget = 0, int(config["ANSWER_CACHE_BYTES"])
        if identity is not None:
            self.identity = identity
        elif config["AUTH"] in ("jwt", "headers"):
            self.identity = jwt_identity if config["AUTH"] == "jwt" else header_identity
        else:
            raise ValueError("DATASOURCES_AUTH must be jwt or headers.")


def utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# Views.


@bp.before_request
def note_connection():
    """Remember whether this request found the connection closed, so the
    teardown closes only what the request opened (a host's stays open)."""
    g.datasources_opens = db.is_closed()
    request.max_content_length = settings().max_body_bytes


@bp.teardown_request
def close_connection(exc):
    if g.pop("datasources_opens", False) and not db.is_closed():
        if g.pop("datasources_discard", False) and hasattr(db.obj, "manual_close"):
            db.obj.manual_close()  # not back to a pool: dead, or opened read-only
        else:
            db.close()


@bp.get("")
def list_sources():
    """The tenant's sources, oldest first, one keyset page at a time."""
    tenant = authorize("viewer")
    query = load_query(list_query_schema)
    limit = query["limit"]
    rows, answers = page_answers(tenant, limit, read_cursor(query.get("cursor"), tenant))
    more = len(rows) > limit
    pagination = {
        "total": rows[0][3] if rows else TenantCount.of(tenant),
        "limit": limit,
        "hasMore": more,
        "nextCursor": write_cursor(tenant, rows[limit - 1]) if more else None,
    }
    data = Fragment("[" + ",".join(answers) + "]")
    return respond({"data": data, "pagination": pagination})


def page_answers(tenant, limit, after):
    """A page's rows (one more than `limit`, to tell whether more follow)
    and the answers of its first `limit`. Each worker keeps answers by source
    id and row version, which every write changes; a page whose answers are
    all kept is read from the index and the row versions, and no answer is
    written again (writing them is, in SQL, the list's largest cost)."""
    state = settings()
    if state.answers_budget:
        rows = DataSource.page(tenant, limit + 1, after, answers=False)
        answers = [state.answers.get((row[1], row[2])) for row in rows[:limit]]
        if None not in answers:
            return rows, answers
    rows = DataSource.page(tenant, limit + 1, after)
    size = sum(len(row[4]) for row in rows)
    if size <= state.answers_budget:  # a page past the whole budget is not kept
        if state.answers_size + size > state.answers_budget:
            state.answers.clear()
            state.answers_size = 0
        state.answers.update(((row[1], row[2]), row[4]) for row in rows)
        state.answers_size += size
    return rows, [row[4] for row in rows[:limit]]


@bp.post("")
def create_source():
    """Create a source; its key is unique within the tenant."""
    tenant = authorize("editor")
    fields = source_schema.load(json_body())
    now = utcnow()
    source = DataSource(id=models.new_id(), tenant_id=tenant, created_at=now, updated_at=now)
    source.__data__.update(fields)
    try:
        with write_transaction():
            created = DataSource.insert_one(source.__data__)
            TenantCount.add(tenant, 1)
    except peewee.IntegrityError:
        raise Problem(409, f"A data source with key {fields['key']!r} already exists.") from None
    return respond(Fragment(created), 201)


@bp.put("")
def update_source():
    """Change the given fields; with `rowVersion`, only if it is still current."""
    tenant = authorize("editor")
    changes = update_source_schema.load(json_body())
    key, expected = changes.pop("key"), changes.pop("row_version", None)
    with write_transaction():
        updated = DataSource.update_one(tenant, key, changes, utcnow(), expected)
        # Without rowVersion, no row updated means none existed when the UPDATE
        # ran; one that READ COMMITTED lets a read see, created since, is no conflict.
        current = None if updated or expected is None else DataSource.find(tenant, key)
    if updated:
        return respond(Fragment(updated))
    if current is None:
        raise Problem(404, f"No data source has key {key!r}.")
    raise Problem(
        409,
        "rowVersion mismatch.",
        "Optimistic concurrency conflict",
        "urn:datasources:concurrency-conflict",
        current=Fragment(current),
    )


@bp.delete("")
def delete_source():
    """Delete the source named by `?key=`."""
    tenant = authorize("editor")
    key = load_query(delete_query_schema)["key"]
    with write_transaction():
        deleted = DataSource.delete_one(tenant, key)
        if deleted:
            TenantCount.add(tenant, -1)
    if not deleted:
        raise Problem(404, f"No data source has key {key!r}.")
    response = current_app.response_class(status=204)
    del response.headers["Content-Type"]  # an empty body has no media type
    return response


def fallback(subpath=None):
    """Our paths that match no view: a problem+json 404 or 405, not the host's page."""
    if subpath is None:
        raise MethodNotAllowed(valid_methods=METHODS)
    raise NotFound()


@bp.record_once
def add_fallback_rules(state):
    # Rules with no method list match every method, so these catch what
    # Flask's routing would otherwise answer outside our error handlers.
    prefix = state.url_prefix
    state.app.view_functions["datasources.fallback"] = fallback
    state.app.url_map.add(Rule(prefix, endpoint="datasources.fallback"))
    state.app.url_map.add(Rule(f"{prefix}/<path:subpath>", endpoint="datasources.fallback"))


bp.record_once(openapi.mount)  # GET <parent of url_prefix>/openapi.json, no auth


# Probes for orchestrators: the standalone service's own `/healthz` and
# `/readyz`, mounted by `create_app` only; a host that embeds the API keeps
# its own probes and its root URL space.

probes = Blueprint("datasources_probes", __name__)
probes.before_request(note_connection)
probes.teardown_request(close_connection)
register_handlers(probes)


@probes.get("/healthz")
def healthz():
    """The process answers; touches no database."""
    return respond({"status": "ok"})


@probes.get("/readyz")
def readyz():
    """The database answers and its schema is current; else 503."""
    pending = models.pending_migrations()
    if pending:
        detail = "Schema migrations are pending: " + ", ".join(pending) + "."
        raise Problem(503, detail, headers={"Retry-After": str(settings().retry_after)})
    return respond({"status": "ready"})


# CLI: `flask token`, `flask db upgrade` (under `flask datasources` when embedded).

db_cli = AppGroup("db", help="The data sources schema.")
bp.cli.add_command(db_cli)


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending schema migrations."""
    applied = models.migrate()
    click.echo("applied: " + ", ".join(applied) if applied else "schema is current")


@bp.cli.command("token")
@click.option("--tenant", required=True)
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--expires-in", default=3600, show_default=True, help="Seconds.")
def token_command(tenant, role, expires_in):
    """Print an HS256 JWT signed with the configured or instance secret."""
    state = current_app.extensions["datasources"]
    if state.jwt_secret is None:
        raise click.UsageError("A public key is configured: sign tokens with its private key.")
    now = datetime.datetime.now(datetime.UTC)
    claims = {state.tenant_claim: tenant, state.role_claim: role, "iat": now}
    claims["exp"] = now + datetime.timedelta(seconds=expires_in)
    if state.jwt_audience:
        claims["aud"] = state.jwt_audience
    if state.jwt_issuer:
        claims["iss"] = state.jwt_issuer
    click.echo(jwt.encode(claims, state.jwt_secret, algorithm="HS256"))


# Wiring.


def init_app(app, url_prefix=PREFIX, database=None, identity=None, cli_group="datasources"):
    """Mount the API on `app`. `database`: a host's Peewee database (default:
    one from DATASOURCES_DATABASE_URL); `identity`: a function returning the
    current request's (tenant, role), replacing JWT or header authentication."""
    config = {key: app.config.get(f"DATASOURCES_{key}", value) for key, value in DEFAULTS.items()}
    state = State(app, config, identity)
    if database is None:
        url = config["DATABASE_URL"] or "sqlite:///" + os.path.join(
            app.instance_path, "datasources.db"
        )
        os.makedirs(app.instance_path, exist_ok=True)
        database = connections.connect_url(
            url,
            busy_timeout_ms=int(config["SQLITE_BUSY_TIMEOUT_MS"]),
            statement_timeout_ms=int(config["STATEMENT_TIMEOUT_MS"]),
        )
    models.bind_database(database)
    app.extensions["datasources"] = state
    observability.init_app(app, bp)
    app.register_blueprint(bp, url_prefix=url_prefix, cli_group=cli_group)
    auto = flag(config["AUTO_MIGRATE"])
    if auto or (auto is None and isinstance(database, peewee.SqliteDatabase)):
        models.migrate()


def create_app(test_config=None):
    """The standalone service: defaults, then DATASOURCES_* from the
    environment, then `test_config`."""
    app = Flask(__name__, instance_relative_config=True)
    env = Config(app.root_path)
    env.from_prefixed_env("DATASOURCES", loads=str)
    app.config.update({f"DATASOURCES_{key}": value for key, value in env.items()})
    app.config.update(test_config or {})
    app.register_error_handler(HTTPException, http_problem)
    init_app(app, cli_group=None)
    app.register_blueprint(probes)
    observability.use_standalone(app)  # stdout log handler, GET /metrics
    return app
