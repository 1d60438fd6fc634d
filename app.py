"""The Data Sources API: a Flask blueprint, its app factory and its CLI.

Reads top to bottom: each app's share (`Service`), views, probes, CLI, then
`init_app` (embedding) and `create_app` (standalone). The views hand named
inputs to one store call each (store.py); errors are in errors.py, identity
in auth.py, request bodies, query strings and cursors in inputs.py.
"""

import datetime
import functools
import os
import posixpath

import click
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import Blueprint, Flask, current_app, g, request
from flask.cli import AppGroup, FlaskGroup
from orjson import Fragment
from peewee import SqliteDatabase
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Rule

from datasources import (
    connections,
    connectors,
    cors,
    models,
    observability,
    openapi,
    store,
    transfer,
    vault,
)
from datasources.auth import (
    ROLES,
    authorize,
    header_identity,
    instance_secret,
    jwt_identity,
    public_key_algorithm,
)
from datasources.errors import Problem, http_problem, register_handlers, respond
from datasources.inputs import if_match, json_body, load_query, read_cursor, write_cursor
from datasources.schemas import (
    delete_query_schema,
    list_query_schema,
    source_query_schema,
    source_schema,
    update_source_schema,
)
from datasources.settings import Settings, from_environ, service

PREFIX = "/api/v1/data-sources"
ROOT = os.path.dirname(os.path.abspath(__file__))
ALLOWED = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]  # on the collection
ITEM_ALLOWED = ["GET", "HEAD", "OPTIONS"]  # on one source's path
SAME = object()  # docs_url / openapi_url: beside the API, at the parent of its prefix

bp = Blueprint("datasources", __name__)
register_handlers(bp)


class Service:
    """One app's share, in `app.extensions["datasources"]`: its settings,
    its database and its identity, then its caches."""

    def __init__(self, app, settings, database, identity=None):
        self.settings, self.database = settings, database
        if settings.jwt_public_key:
            self.jwt_secret = None
            self.jwt_key = load_pem_public_key(settings.jwt_public_key.encode())
            self.jwt_algorithms = [public_key_algorithm(self.jwt_key)]
        else:
            self.jwt_secret = settings.jwt_secret or instance_secret(app)
            self.jwt_key, self.jwt_algorithms = self.jwt_secret, ["HS256"]
        self.cursor_secret = settings.cursor_secret or self.jwt_secret or instance_secret(app)
        if identity is None:
            identity = jwt_identity if settings.auth == "jwt" else header_identity
        self.identity = identity
        self.catalog = connectors.load(settings)  # refuses a bad connector file at start-up
        self.vault = vault.vault_of(app, settings)  # refuses a key that is not a Fernet key
        auto = settings.auto_migrate
        self.migrate_first = isinstance(database, SqliteDatabase) if auto is None else auto
        self.schema_ready = False  # checked on the first store call; see store.database
        # Caches: per worker, never shared across apps.
        self.verified_tokens = {}  # token -> (expiry, claims); see auth.jwt_identity
        self.answers = store.Answers(settings.answer_cache_bytes)

    def migrate(self):
        """Apply pending migrations, sealing secrets found in clear with our keys."""
        return models.migrate(self.database, store.sealer(self))


# Views.


class KeyConverter(BaseConverter):
    """A source's key in a path: any characters, `/` and leading or doubled
    slashes included (a client percent-encodes them; PATH_INFO holds them
    decoded)."""

    regex = ".+"
    part_isolating = False


@bp.record_once
def add_key_converter(state):
    state.app.url_map.converters["datasources_key"] = KeyConverter


@bp.before_request
def note_connection():
    """Remember the database whose connection this request finds closed, so
    the teardown closes only what the request opened (a host's stays open)."""
    state = service()
    request.max_content_length = state.settings.max_body_bytes
    if state.database.is_closed():
        g.datasources_opens = state.database


@bp.teardown_request
def close_connection(exc):
    database = g.pop("datasources_opens", None)
    if database is not None and not database.is_closed():
        if g.pop("datasources_discard", False) and hasattr(database, "manual_close"):
            database.manual_close()  # not back to a pool: dead, or opened read-only
        else:
            database.close()


@bp.get("")
def list_sources():
    """The tenant's sources that match the query's filters, oldest first,
    one keyset page at a time."""
    tenant = authorize("viewer")
    filters = load_query(list_query_schema)
    limit, cursor = filters.pop("limit"), filters.pop("cursor", None)
    after = read_cursor(cursor, tenant, filters)
    page = store.list_sources(tenant, limit, after, filters)
    pagination = {
        "total": page.total,
        "limit": limit,
        "hasMore": page.next_after is not None,
        "nextCursor": page.next_after and write_cursor(tenant, page.next_after, filters),
    }
    data = Fragment("[" + ",".join(page.answers) + "]")
    return respond({"data": data, "pagination": pagination})


@bp.post("")
def create_source():
    """Create a source; its key is unique within the tenant."""
    tenant = authorize("editor")
    created = store.create_source(tenant, source_schema.load(json_body()))
    return tagged(respond(Fragment(created.answer), 201), created)


@bp.get("/<datasources_key:key>", merge_slashes=False)
def get_source(key):
    """One source by its key, percent-encoded in the path (`/` included);
    304 when `If-None-Match` names its entity tag. `?includeSecrets=true`:
    its secrets in clear, for the reveal role only, never cached."""
    tenant = authorize("viewer")
    reveal = bool(request.args) and load_query(source_query_schema).get("include_secrets", False)
    if reveal:
        authorize(service().settings.reveal_role)
    try:  # Werkzeug reads a path that is not UTF-8 with U+FFFD: another key
        request.environ["PATH_INFO"].encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Problem(404, "No data source has that key: the path is not UTF-8.") from None
    if reveal:
        source = store.reveal_source(tenant, key, g.datasources_role).source
    else:
        source = store.get_source(tenant, key)
    if request.if_none_match.contains_weak(source.tag):
        response = empty(304)
    else:
        response = respond(Fragment(source.answer))
    if reveal:
        response.headers["Cache-Control"] = "no-store"
    return tagged(response, source)


@bp.put("")
def update_source():
    """Change the given fields; with `rowVersion`, only if it is still
    current, and with `If-Match`, only if the source is one it names."""
    tenant = authorize("editor")
    changes = update_source_schema.load(json_body())
    key, expected = changes.pop("key"), changes.pop("row_version", None)
    updated = store.update_source(tenant, key, changes, expected, if_match(expected))
    return tagged(respond(Fragment(updated.answer)), updated)


@bp.delete("")
def delete_source():
    """Delete the source named by `?key=`, with `?rowVersion=` and `If-Match`
    as on PUT."""
    tenant = authorize("editor")
    query = load_query(delete_query_schema)
    expected = query.get("row_version")
    store.delete_source(tenant, query["key"], expected, if_match(expected))
    return empty(204)


# The connector catalog (connectors.py), beside the data sources at
# `<parent of the prefix>/connectors`: a blueprint of its own with the API's
# hooks and handlers, which init_app mounts at `connectors_url`.

connectors_bp = Blueprint("datasources_connectors", __name__)
connectors_bp.before_request(note_connection)
connectors_bp.teardown_request(close_connection)
register_handlers(connectors_bp)


@connectors_bp.get("", provide_automatic_options=False)
def list_connectors():
    """Every connector the service knows, by key."""
    authorize("viewer")
    return respond(service().catalog.listing)


@connectors_bp.get("/<key>", provide_automatic_options=False)
def get_connector(key):
    """One connector by its key; a 404 when none has it."""
    authorize("viewer")
    answer = service().catalog.answers.get(key)
    if answer is None:
        raise Problem(404, f"No connector has key {key!r}.")
    return respond(answer)


def connectors_fallback(subpath=None):
    """The catalog's paths that match no view, as `fallback` answers them."""
    if subpath == "" or (subpath and "/" in subpath):
        raise NotFound()
    if request.method == "OPTIONS":
        return empty(204, {"Allow": ", ".join(ITEM_ALLOWED)})
    raise MethodNotAllowed(valid_methods=ITEM_ALLOWED)


@connectors_bp.record_once
def add_connectors_fallback_rules(state):
    endpoint, prefix = f"{state.name}.fallback", state.url_prefix
    state.app.view_functions[endpoint] = connectors_fallback
    rule = functools.partial(Rule, endpoint=endpoint, merge_slashes=False)
    state.app.url_map.add(rule(prefix))
    state.app.url_map.add(rule(f"{prefix}/", defaults={"subpath": ""}))
    state.app.url_map.add(rule(f"{prefix}/<path:subpath>"))


# (End of the connector catalog.)


def empty(status, headers=None):
    response = current_app.response_class(status=status, headers=headers)
    del response.headers["Content-Type"]  # an empty body has no media type
    return response


def tagged(response, source):
    response.set_etag(source.tag)
    return response


def fallback(subpath=None):
    """Our paths that match no view: OPTIONS is a 204 with `Allow` and no
    token needed (a browser's preflight carries none); any other a
    problem+json 404 or 405, not the host's page."""
    if subpath == "":  # `<prefix>/`: no source has the empty key
        raise NotFound()
    allowed = ALLOWED if subpath is None else ITEM_ALLOWED
    if request.method == "OPTIONS":
        return empty(204, {"Allow": ", ".join(allowed)})
    raise MethodNotAllowed(valid_methods=allowed)


@bp.record_once
def add_fallback_rules(state):
    # Rules with no method list match every method, so these catch what
    # Flask's routing would otherwise answer outside our error handlers:
    # another method on the collection or on a source's path, and `<prefix>/`.
    prefix = state.url_prefix
    for view_rule in state.app.url_map.iter_rules():  # our views, all defined above
        ours = view_rule.endpoint.startswith(f"{state.name}.")
        if ours and view_rule.provide_automatic_options:  # OPTIONS: fallback's 204, not a 200
            view_rule.methods.discard("OPTIONS")
            view_rule.provide_automatic_options = False
    state.app.view_functions["datasources.fallback"] = fallback
    rule = functools.partial(Rule, endpoint="datasources.fallback", merge_slashes=False)
    state.app.url_map.add(rule(prefix))
    state.app.url_map.add(rule(f"{prefix}/", defaults={"subpath": ""}))
    state.app.url_map.add(rule(f"{prefix}/<datasources_key:subpath>"))


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
    pending = models.pending_migrations(service().database)
    if pending:
        detail = "Schema migrations are pending: " + ", ".join(pending) + "."
        retry = str(service().settings.retry_after_seconds)
        raise Problem(503, detail, headers={"Retry-After": retry})
    return respond({"status": "ready"})


# CLI: `flask token`, `flask db upgrade` (under `flask datasources` when embedded).

db_cli = AppGroup("db", help="The data sources schema.")
bp.cli.add_command(db_cli)
transfer.add_commands(bp.cli)  # `export` and `import`


@db_cli.command("upgrade")
def db_upgrade():
    """Apply pending schema migrations."""
    applied = service().migrate()
    click.echo("applied: " + ", ".join(applied) if applied else "schema is current")


secrets_cli = AppGroup("secrets", help="The secrets of sources' configs.")
bp.cli.add_command(secrets_cli)


@secrets_cli.command("rotate")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True)
def secrets_rotate(batch):
    """Encrypt every stored secret again under the first of
    DATASOURCES_SECRET_KEYS, while the service serves; then the other keys
    can go. Run again after an interruption: it goes on where it stopped."""
    database = store.database()
    tally = store.Rotation()
    with database.connection_context():
        for tally in store.rotate_secrets(batch):
            click.echo(f"rotated {tally.rotated}", err=True)
    click.echo(
        f"rotated: {tally.rotated}, changed meanwhile: {tally.changed}, "
        f"unreadable: {tally.unreadable}"
    )
    if tally.changed:
        click.echo("Some sources were written meanwhile: run it again.", err=True)
    if tally.changed or tally.unreadable:
        raise SystemExit(1)


@secrets_cli.command("new-key")
def secrets_new_key():
    """Print a new Fernet key, for DATASOURCES_SECRET_KEYS."""
    click.echo(vault.new_key())


@bp.cli.command("token")
@click.option("--tenant", required=True)
@click.option("--role", required=True, type=click.Choice(list(ROLES)))
@click.option("--expires-in", default=3600, show_default=True, help="Seconds.")
def token_command(tenant, role, expires_in):
    """Print an HS256 JWT signed with the configured or instance secret."""
    state = service()
    if state.jwt_secret is None:
        raise click.UsageError("A public key is configured: sign tokens with its private key.")
    now = datetime.datetime.now(datetime.UTC)
    settings = state.settings
    claims = {settings.jwt_tenant_claim: tenant, settings.jwt_role_claim: role, "iat": now}
    claims["exp"] = now + datetime.timedelta(seconds=expires_in)
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    click.echo(jwt.encode(claims, state.jwt_secret, algorithm="HS256"))


def reveal_secrets(tenant, key, caller="host"):
    """For a host that embeds the API, in its app context: the source of
    `key` as a dict, its secrets in clear; logged and counted as a reveal
    by `caller` (a 404 or 503 Problem as the API's)."""
    return models.json_value(store.reveal_source(tenant, key, caller).source.answer)


# Wiring.


def init_app(
    app,
    url_prefix=PREFIX,
    database=None,
    identity=None,
    cli_group="datasources",
    openapi_url=SAME,
    docs_url=SAME,
    connectors_url=SAME,
):
    """Mount the API on `app`, with its settings from `app.config`'s
    `DATASOURCES_*` keys. `database`: a Peewee database of the host's
    (default: one from DATASOURCES_DATABASE_URL, else an SQLite file in the
    instance folder); `identity`: a function returning the current request's
    (tenant, role), replacing JWT or header authentication; `openapi_url`,
    `docs_url`: where the OpenAPI document and its docs page go (default:
    beside the API, `<parent of url_prefix>/openapi.json` and `/docs`; None:
    not served); `connectors_url`: the connector catalog (default
    `<parent of url_prefix>/connectors`; None: not served). A path the host
    already routes is refused with a ValueError.
    Migrations run by `flask datasources db upgrade`, or on the first API
    request when DATASOURCES_AUTO_MIGRATE says so (default: on SQLite)."""
    if "datasources" in app.extensions:
        raise ValueError("init_app: the data sources API is mounted on this app already.")
    settings = Settings.from_config(app.config)
    parent = posixpath.dirname(url_prefix.rstrip("/")).rstrip("/")
    openapi_url = f"{parent}/openapi.json" if openapi_url is SAME else openapi_url
    docs_url = f"{parent}/docs" if docs_url is SAME else docs_url
    connectors_url = f"{parent}/connectors" if connectors_url is SAME else connectors_url
    refuse_clashes(app, url_prefix, openapi_url, docs_url, connectors_url)
    if database is None:
        database = open_database(app, settings)
    app.extensions["datasources"] = Service(app, settings, database, identity)
    observability.init_app(app, bp)
    cors.init_app(app, bp.name, settings.cors_origins)
    app.register_blueprint(bp, url_prefix=url_prefix, cli_group=cli_group)
    if connectors_url is not None:
        observability.init_app(app, connectors_bp)
        cors.init_app(app, connectors_bp.name, settings.cors_origins)
        app.register_blueprint(connectors_bp, url_prefix=connectors_url)
    openapi.mount(app, url_prefix, openapi_url, docs_url, connectors_url)


def open_database(app, settings):
    url = settings.database_url
    if url is None:
        os.makedirs(app.instance_path, exist_ok=True)
        url = "sqlite:///" + os.path.join(app.instance_path, "datasources.db")
    return connections.connect_url(
        url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        statement_timeout_ms=settings.statement_timeout_ms,
    )


def refuse_clashes(app, url_prefix, openapi_url, docs_url, connectors_url=None):
    """Refuse paths the host routes already: which one answers would depend
    on registration order, with no warning."""
    if docs_url is not None and openapi_url is None:
        raise ValueError("init_app: the docs page needs the document; give openapi_url too.")
    ours = {"url_prefix": url_prefix, "openapi_url": openapi_url, "docs_url": docs_url}
    ours["connectors_url"] = connectors_url
    for rule in app.url_map.iter_rules():
        for name, path in ours.items():
            path = path and path.rstrip("/")
            if path and (rule.rule.rstrip("/") == path or rule.rule.startswith(path + "/")):
                raise ValueError(
                    f"init_app: {name} {path!r} clashes with the host's route {rule.rule!r} "
                    f"({rule.endpoint}); choose another {name}, or None to leave it out."
                )


def create_app(test_config=None, instance_path=None):
    """The standalone service: defaults, then DATASOURCES_* from the
    environment, then `test_config`. Applies pending migrations at once when
    DATASOURCES_AUTO_MIGRATE says so, so gunicorn's master migrates before
    it forks."""
    if instance_path is None and os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        instance_path = os.path.join(ROOT, "instance")  # a checkout: its own instance/
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    app.config.update(from_environ(os.environ))
    app.config.update(test_config or {})
    app.register_error_handler(HTTPException, http_problem)
    init_app(app, cli_group=None)
    app.register_blueprint(probes)
    observability.use_standalone(app)  # stdout log handler, GET /metrics
    state = app.extensions["datasources"]
    if state.migrate_first:
        state.migrate()
        state.migrate_first = False
    return app


def cli():
    """`datasources <command>` (db upgrade, token, export, import): the
    standalone service's CLI, installed as a console script."""
    FlaskGroup(create_app=create_app, help="The data sources API.").main()
