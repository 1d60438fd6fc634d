"""Errors: one RFC 9457 problem+json body for every failure, and the
handlers that map exceptions to it. Views raise; they never build errors."""

import logging

import peewee
from flask import current_app, g, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions
from werkzeug.http import HTTP_STATUS_CODES

from datasources import observability
from datasources.schemas import to_json

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


def respond(data, status=200):
    return current_app.response_class(to_json(data), status, mimetype="application/json")


def http_problem(exc):
    if isinstance(exc, InternalServerError) and exc.original_exception is not None:
        return unexpected_problem(exc.original_exception)
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return Problem(exc.code, exc.description, headers=headers).response


def validation_problem(exc):
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    detail = "Invalid or missing fields: " + ", ".join(sorted(messages)) + "."
    return Problem(
        400, detail, "Validation error", "urn:datasources:validation-error", errors=messages
    ).response


def database_problem(exc):
    log.warning("database unavailable: %s", type(exc).__name__)
    observability.count_database_error(exc)
    g.datasources_discard = True
    seconds = str(current_app.extensions["datasources"].settings.retry_after_seconds)
    return Problem(
        503, "The database is unavailable; try again shortly.", headers={"Retry-After": seconds}
    ).response


def unexpected_problem(exc):
    log.error("unhandled %s in %s %s", type(exc).__name__, request.method, request.path)
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
    blueprint.register_error_handler(Exception, unexpected_problem)
