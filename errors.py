"""Errors: one RFC 9457 problem+json body for every failure, and the
handlers that map exceptions to it. Views raise; they never build errors."""

import logging
import threading
import weakref

import peewee
from flask import current_app, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from datasources import observability
from datasources.schemas import to_json
from datasources.settings import service

log = logging.getLogger("datasources")


class Problem(Exception):
    """An error response with a problem+json body; raised, never returned."""

    def __init__(self, status, detail, title=None, kind="about:blank", headers=None, **extra):
        super().__init__(detail)
        body = {
            "type": kind,
            "title": title or HTTP_STATUS_CODES.get(status, "Error"),
            "status": status,
            "detail": detail,
            **extra,
        }
        self.response = current_app.response_class(
            to_json(body), status, headers, mimetype="application/problem+json"
        )
        self.response.problem_title = body["title"]  # for the request's log line


def respond(data, status=200):
    return current_app.response_class(to_json(data), status, mimetype="application/json")


def unavailable(detail):
    """A 503 with the configured Retry-After."""
    seconds = str(service().settings.retry_after_seconds)
    return Problem(503, detail, headers={"Retry-After": seconds})


def http_problem(exc):
    if isinstance(exc, InternalServerError) and exc.original_exception is not None:
        return unexpected_problem(exc.original_exception)
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    detail = exc.description
    if exc.code == 413:
        limit = request.max_content_length or service().settings.max_body_bytes
        detail = f"The body is larger than the limit of {limit} bytes."
    return Problem(exc.code, detail, headers=headers).response


def validation_problem(exc):
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    detail = "Invalid or missing fields: " + ", ".join(sorted(messages)) + "."
    return Problem(
        400, detail, "Validation error", "urn:datasources:validation-error", errors=messages
    ).response


def database_problem(exc):
    """A 503 while the database fails, logged with its cause and counted."""
    cause = observability.database_cause(exc)
    observability.count_database_error(cause)
    if cause == "missing_table":
        return schema_problem()
    words = observability.database_words(exc, cause)
    log.warning("database unavailable: %s (%s)", words, type(exc).__name__)
    g.datasources_discard = True
    return unavailable("The database is unavailable; try again shortly.").response


def programming_problem(exc):
    """PostgreSQL names a missing table or column a programming error: that is
    a schema that is not current (a 503); anything else is a bug (a 500)."""
    cause = observability.database_cause(exc)
    if cause != "missing_table":
        return unexpected_problem(exc)
    observability.count_database_error(cause)
    return schema_problem()


def migrations_pending(pending):
    """The 503 of an API request while schema migrations pend (raised by the
    store); each worker logs the first, with the command that applies them."""
    names = ", ".join(pending)
    command = upgrade_command()
    message = "schema migrations are pending (%s): the API answers 503 until `%s` runs"
    log_once("pending", message, names, command)
    return unavailable(f"Schema migrations are pending: {names}; run `db upgrade`.")


def schema_problem():
    """The 503 of a request that met a missing table or column."""
    message = "a table or column the API needs is missing: it answers 503 until `%s` runs"
    log_once("missing", message, upgrade_command())
    detail = "Schema migrations are pending: a table the API needs is missing; run `db upgrade`."
    return unavailable(detail).response


_told = weakref.WeakKeyDictionary()  # each app's share -> what this worker has logged
_telling = threading.Lock()


def log_once(kind, message, *args):
    """An ERROR line the first time this worker meets `kind` for the current app."""
    with _telling:
        told = _told.setdefault(service(), set())
        if kind in told:
            return
        told.add(kind)
    log.error(message, *args)


def upgrade_command():
    """What applies our migrations: the standalone service's command, or the
    host's `flask` with the CLI group that init_app was given."""
    if current_app.import_name == "datasources.app":
        return "flask --app datasources.app db upgrade"
    ours = current_app.blueprints["datasources"].cli
    group = next((name for name, cmd in current_app.cli.commands.items() if cmd is ours), None)
    return f"flask {group} db upgrade" if group else "flask db upgrade"


def unexpected_problem(exc):
    observability.log_unhandled(exc)
    return Problem(500, "The server failed to handle the request.").response


def register_handlers(blueprint):
    """Every error of the blueprint's requests becomes a problem+json."""
    blueprint.register_error_handler(Problem, lambda exc: exc.response)
    blueprint.register_error_handler(HTTPException, http_problem)
    for code in default_exceptions:  # a host's app-level 404 page outranks class handlers
        blueprint.register_error_handler(code, http_problem)
    blueprint.register_error_handler(ValidationError, validation_problem)
    blueprint.register_error_handler(peewee.OperationalError, database_problem)
    blueprint.register_error_handler(peewee.InterfaceError, database_problem)
    blueprint.register_error_handler(peewee.ProgrammingError, programming_problem)
    blueprint.register_error_handler(Exception, unexpected_problem)
