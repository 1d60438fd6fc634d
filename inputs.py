"""What a request brings: its JSON body, its query string and its list
cursor, read strictly; anything else is a 4xx problem, never a guess."""

import datetime
import hashlib
import json
import math
import re

from flask import request
from itsdangerous import BadSignature, Signer
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from datasources.errors import Problem
from datasources.settings import service


def unique_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def finite(text):
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("number out of range")
    return number


def reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_body():
    """The raw body, a 413 past MAX_BODY_BYTES however it is framed. Werkzeug
    checks a Content-Length, but cuts a chunked body at the limit silently,
    and under gunicorn takes a body cut short by its client as complete."""
    if request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        data = request.get_data(cache=False)
        if len(data) < (request.content_length or 0):
            raise Problem(400, "The body ended before its Content-Length.")
        return data
    limit, stream, data = service().settings.max_body_bytes, request.environ["wsgi.input"], b""
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            return data
        data += chunk
    raise RequestEntityTooLarge()


def json_body():
    """The request's JSON object, strictly parsed from UTF-8 (RFC 8259)."""
    if request.mimetype != "application/json":
        raise Problem(415, "The body must be sent as Content-Type: application/json.")
    if request.mimetype_params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise Problem(415, "The body must be JSON in utf-8.")
    try:
        body = json.loads(
            read_body().decode("utf-8"),  # strict: no UTF-16, no encoded surrogates
            object_pairs_hook=unique_keys,
            parse_float=finite,
            parse_constant=reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        detail = str(exc) if "duplicate key" in str(exc) else "malformed JSON"
        raise Problem(400, f"The body is not valid JSON: {detail}.") from None
    if not isinstance(body, dict):
        raise Problem(400, "The body must be a JSON object.")
    return body


def load_query(schema):
    """The query string through `schema`. A parameter it reads given twice is
    a 400: layers that pick the first or the last would disagree."""
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    repeated = [name for name in repeated if name in schema.fields]
    if repeated:
        raise ValidationError({name: ["Given more than once."] for name in repeated})
    return schema.load(request.args.to_dict())


EPOCH = datetime.datetime(1970, 1, 1)
CURSOR = re.compile(r"(-?[0-9]{1,20})\.(.{1,64})", re.DOTALL)


def cursor_signer(tenant):
    """Cursors are signed for one tenant: its id salts the key, so a cursor
    never verifies for another tenant, and never names its tenant."""
    secret = service().cursor_secret
    return Signer(secret, salt=f"datasources-cursor:{tenant}", digest_method=hashlib.sha256)


def write_cursor(tenant, position):
    """`<created_at in µs since 1970>.<id>.<signature>` of a (created_at, id)
    position: URL-safe and short."""
    created_at, source_id = position
    micros = (created_at - EPOCH) // datetime.timedelta(microseconds=1)
    return cursor_signer(tenant).sign(f"{micros}.{source_id}").decode()


def read_cursor(cursor, tenant):
    """The (created_at, id) position a cursor of this tenant points after;
    anything but a cursor we wrote for this tenant is a 400."""
    if cursor is None:
        return None
    try:
        position = CURSOR.fullmatch(cursor_signer(tenant).unsign(cursor).decode())
        if position is None or not position[2].isprintable():
            raise ValueError("not a position")
        return EPOCH + datetime.timedelta(microseconds=int(position[1])), position[2]
    except (BadSignature, ValueError, OverflowError):
        raise ValidationError({"cursor": ["Not a valid cursor."]}) from None
