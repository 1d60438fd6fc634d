"""Nothing a client sends leaks where it must not: a value never reaches a
response header, and a token never reaches a log or an error's answer."""

import logging

import hostile
import pytest
from conftest import API, SECRET, auth, token
from hostile import SEED, bearer, exactly, head, raw_request

from datasources import models

server = hostile.server  # fixtures


def test_crlf_in_values_never_reaches_a_response_header(client):
    evil = "crm\r\nSet-Cookie: session=evil\r\nX-Injected: 1"
    created = client.post(API, json={"key": evil, "name": evil}, headers=auth())
    assert created.status_code == 201 and created.get_json()["key"] == evil
    responses = [
        client.post(API, json={"key": evil, "name": "n"}, headers=auth()),
        client.put(API, json={"key": evil + "x", "name": "n"}, headers=auth()),
        client.delete(API, query_string={"key": evil + "x"}, headers=auth()),
        client.get(API, headers=auth()),
        client.get(API, headers=auth(), environ_overrides={"HTTP_X_REQUEST_ID": evil}),
    ]
    assert [r.status_code for r in responses] == [409, 404, 404, 200, 200]
    for response in responses:
        assert "Set-Cookie" not in response.headers and "X-Injected" not in response.headers
        for name, value in response.headers:
            assert "\r" not in value and "\n" not in value, name


@pytest.fixture
def every_logger_at_debug(caplog):
    names = ["", "werkzeug", "peewee", "datasources", "flask.app", "jwt", "urllib3"]
    names += list(logging.root.manager.loggerDict)
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def logged(caplog):
    """Every log line and every record's attributes, as one text."""
    return caplog.text + "".join(str(record.__dict__) for record in caplog.records)


def test_logs_never_hold_a_token(client, every_logger_at_debug, monkeypatch):
    editor, viewer = token(), token(role="viewer")
    wrong = token(secret="another-secret-" + "z" * 32)
    client.post(API, json=SEED, headers=bearer(editor))
    client.post(API, json=SEED, headers=bearer(editor))
    client.post(API, json={"key": 1}, headers=bearer(editor))
    client.post(API, json=SEED, headers=bearer(viewer))
    client.get(API, headers=bearer(wrong))
    client.get(API + "?limit=x", headers=bearer(viewer))
    client.put(API, json={"key": "crm", "rowVersion": 9}, headers=bearer(editor))
    client.delete(API, query_string={"key": "nope"}, headers=bearer(editor))

    def explode(*args, **kwargs):
        from flask import request

        raise RuntimeError(f"boom with {dict(request.headers)}")

    monkeypatch.setattr(models, "page", explode)
    failed = client.get(API, headers=bearer(viewer))
    assert failed.status_code == 500 and editor not in failed.get_data(as_text=True)
    assert viewer not in failed.get_data(as_text=True)
    caplog = every_logger_at_debug
    assert caplog.records, "the requests logged nothing at all: is capture working?"
    text = logged(caplog)
    for secret in (editor, viewer, wrong, SECRET, editor.split(".")[2], viewer.split(".")[2]):
        assert secret not in text
    assert "Bearer" not in text and "authorization" not in text.lower()


def test_logs_of_a_real_server_never_hold_a_token(server, every_logger_at_debug):
    minted = token()
    for body, length in ((exactly(100), 100), (b'{"key": 1}', 10), (b"{", 1)):
        raw_request(server.server_port, head(length=length, bearer=minted), body)
    raw_request(server.server_port, head(length=1, bearer="x." + minted), b"{")
    caplog = every_logger_at_debug
    assert "werkzeug" in {record.name for record in caplog.records}
    text = logged(caplog)
    assert minted not in text and minted.split(".")[2] not in text
    assert "Bearer" not in text
