"""OPTIONS on our paths (a 204 with `Allow`, no token needed) and optional
CORS for browser front ends on other origins (DATASOURCES_CORS_ORIGINS, off
by default), on the API's requests only: a host's routes never get our
headers."""

import pytest
from conftest import API, SECRET, auth, close, database_of, problem, rows
from flask import Flask

from datasources.app import init_app

ALLOW = "GET, HEAD, POST, PUT, DELETE, OPTIONS"
FRONT_END = "https://app.example.com"
PREFLIGHT = {
    "Origin": FRONT_END,
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def cors_headers(response):
    return {k: v for k, v in response.headers.items() if k.startswith("Access-Control-")}


# OPTIONS.


def test_options_on_the_collection_is_a_204_with_allow_and_needs_no_token(app, client):
    response = client.options(API)
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Allow"] == ALLOW
    assert "Content-Type" not in response.headers and response.headers["X-Request-ID"]
    assert cors_headers(response) == {}  # CORS is off by default
    assert client.options(API, headers=auth(role="viewer")).headers["Allow"] == ALLOW
    assert rows(app) == []


def test_options_is_our_answer_whatever_the_token(client):
    for headers in ({"Authorization": "Bearer forged"}, {"Authorization": "Basic eDp5"}):
        response = client.options(API, headers=headers)
        assert (response.status_code, response.headers["Allow"]) == (204, ALLOW)


def test_options_on_a_sources_path_is_a_204_with_allow(client):
    for path in (f"{API}/crm", f"{API}/a/b", f"{API}/nowhere"):
        response = client.options(path)
        assert (response.status_code, response.headers["Allow"]) == (204, "GET, HEAD, OPTIONS")
    problem(client.options(f"{API}/"), 404)  # no source has the empty key


def test_a_405_names_every_method_the_collection_answers(client):
    response = client.patch(API, headers=auth())
    problem(response, 405)
    assert response.headers["Allow"] == ALLOW


# CORS, off by default.


def test_no_cors_headers_by_default(client):
    for response in (
        client.get(API, headers={**auth(), "Origin": FRONT_END}),
        client.options(API, headers=PREFLIGHT),
    ):
        assert cors_headers(response) == {}


@pytest.fixture
def cors_app(make_app):
    return make_app(DATASOURCES_CORS_ORIGINS=f" {FRONT_END}, http://localhost:3000 ,")


def test_a_preflight_from_an_allowed_origin_is_answered(cors_app):
    response = cors_app.test_client().options(API, headers=PREFLIGHT)
    assert (response.status_code, response.headers["Allow"]) == (204, ALLOW)
    assert cors_headers(response) == {
        "Access-Control-Allow-Origin": FRONT_END,
        "Access-Control-Allow-Methods": "DELETE, GET, HEAD, OPTIONS, POST, PUT",
        "Access-Control-Allow-Headers": "authorization, content-type",
        "Access-Control-Max-Age": "600",
        "Access-Control-Expose-Headers": "Allow, Retry-After, WWW-Authenticate, X-Request-ID",
    }
    assert response.headers["Vary"] == "Origin"


def test_a_preflight_asking_for_a_header_we_do_not_read_is_not_granted_it(cors_app):
    headers = {**PREFLIGHT, "Access-Control-Request-Headers": "authorization, x-forwarded-for"}
    response = cors_app.test_client().options(API, headers=headers)
    assert response.headers["Access-Control-Allow-Headers"] == "authorization"


def test_requests_from_an_allowed_origin_can_read_every_answer(app, cors_app):
    client = cors_app.test_client()
    origin = {"Origin": "http://localhost:3000"}
    created = client.post(API, json={"key": "k", "name": "n"}, headers={**auth(), **origin})
    assert created.status_code == 201
    responses = [
        created,
        client.get(API, headers={**auth(), **origin}),
        client.get(API, headers=origin),  # 401: the front end sees why
        client.post(API, data="{", headers={**auth(), **origin, "Content-Type": "text/plain"}),
        client.delete(API, query_string={"key": "nowhere"}, headers={**auth(), **origin}),
    ]
    assert [response.status_code for response in responses] == [201, 200, 401, 415, 404]
    for response in responses:
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
        assert "Access-Control-Allow-Credentials" not in response.headers  # tokens, no cookies
    assert [row["key"] for row in rows(cors_app)] == ["k"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://app.example.com.evil.example"},
        {"Origin": "http://app.example.com"},  # another scheme: another origin
        {"Origin": "null"},
        {},  # not a browser's cross-origin request: nothing to say
    ],
)
def test_other_origins_get_no_cors_headers(cors_app, headers):
    client = cors_app.test_client()
    for response in (
        client.get(API, headers={**auth(), **headers}),
        client.options(API, headers={**PREFLIGHT, **headers} if headers else {}),
    ):
        assert response.status_code in (200, 204)
        assert cors_headers(response) == {}


def test_any_origin_with_a_star(make_app):
    client = make_app(DATASOURCES_CORS_ORIGINS="*").test_client()
    response = client.get(API, headers={**auth(), "Origin": "https://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    "origins",
    [
        "https://app.example.com/",
        "https://app.example.com/path",
        "app.example.com",
        "https://*.example.com",
        "https://app.example.com:port",
        "http://[::1]:3000",
        "https://app.example.com https://other.example",
    ],
)
def test_an_origin_that_is_not_one_is_refused_at_start(make_app, origins):
    with pytest.raises(ValueError, match="DATASOURCES_CORS_ORIGINS"):
        make_app(DATASOURCES_CORS_ORIGINS=origins)


def test_the_document_is_the_apis_and_the_probes_are_not(cors_app):
    client = cors_app.test_client()
    document = client.get("/api/v1/openapi.json", headers={"Origin": FRONT_END})
    assert document.headers["Access-Control-Allow-Origin"] == FRONT_END  # a front end reads it
    probe = client.get("/healthz", headers={"Origin": FRONT_END})
    assert probe.status_code == 200 and cors_headers(probe) == {}


# Embedded: CORS on the API's requests only, whatever the host's own config says.


def test_a_host_never_gets_our_cors_headers(database_url, tmp_path):
    host = Flask("host", instance_path=str(tmp_path))
    host.config.update(
        DATASOURCES_JWT_SECRET=SECRET,
        DATASOURCES_DATABASE_URL=database_url,
        DATASOURCES_AUTO_MIGRATE=True,
        DATASOURCES_CORS_ORIGINS=[FRONT_END],  # a host's Python list
        CORS_ORIGINS="https://host-only.example",  # the host's flask-cors settings: not ours
        CORS_SUPPORTS_CREDENTIALS=True,
    )
    host.add_url_rule("/home", "home", lambda: "home")
    init_app(host, url_prefix="/ds")
    client = host.test_client()
    home = client.get("/home", headers={"Origin": FRONT_END})
    assert home.data == b"home" and cors_headers(home) == {}
    assert host.after_request_funcs.get(None) is None  # no hook on the host's requests
    api = client.get("/ds", headers={**auth(), "Origin": FRONT_END})
    assert api.status_code == 200 and api.headers["Access-Control-Allow-Origin"] == FRONT_END
    assert "Access-Control-Allow-Credentials" not in api.headers
    other = client.get("/ds", headers={**auth(), "Origin": "https://host-only.example"})
    assert cors_headers(other) == {}
    preflight = client.options("/ds", headers=PREFLIGHT)
    assert preflight.status_code == 204 and preflight.headers["Allow"] == ALLOW
    assert cors_headers(preflight)["Access-Control-Allow-Origin"] == FRONT_END
    close(database_of(host))


def test_two_apps_in_one_process_keep_their_own_origins(make_app):
    first = make_app(DATASOURCES_CORS_ORIGINS="https://first.example").test_client()
    second = make_app(DATASOURCES_CORS_ORIGINS="https://second.example").test_client()
    none = make_app().test_client()
    for client, allowed in ((first, "https://first.example"), (second, "https://second.example")):
        for origin in ("https://first.example", "https://second.example"):
            response = client.get(API, headers={**auth(), "Origin": origin})
            assert response.headers.get("Access-Control-Allow-Origin") == (
                origin if origin == allowed else None
            )
    assert cors_headers(none.get(API, headers={**auth(), "Origin": "https://first.example"})) == {}
