"""Hostile credentials: a forged, broken or misplaced token gets a 401 and
nothing else, a signed token with odd claims a 401 or 403 (the same every
time), a token signed with the public key nothing, and a trusted gateway's
headers with odd values nothing. (Plainer cases live in test_auth.py.)"""

import base64
import hashlib
import hmac
import json
import re

import hostile
import jwt
import pytest
from conftest import API, SECRET, problem, rows, token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hostile import bearer

shared, shared_app = hostile.shared, hostile.shared_app  # fixtures

SECRET_BYTES = SECRET.encode()


def b64(data):
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def handmade(header, claims, key=SECRET_BYTES, digest=hashlib.sha256):
    """A JWS signed with HMAC over whatever header and payload bytes we like."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


GOOD = {"tenant_id": "t_001", "role": "admin"}
HS = {"alg": "HS256", "typ": "JWT"}
VALID = token(role="admin")

# Requests without a valid credential: a 401, whatever they try.

FORGED = {
    "alg-none": f"{b64({'alg': 'none'})}.{b64(GOOD)}.",
    "alg-None": f"{b64({'alg': 'None'})}.{b64(GOOD)}.",
    "alg-none-no-dot": f"{b64({'alg': 'none'})}.{b64(GOOD)}",
    "alg-none-with-signature": f"{b64({'alg': 'none'})}.{b64(GOOD)}.{VALID.split('.')[2]}",
    "alg-missing": handmade({"typ": "JWT"}, GOOD),
    "alg-list": handmade({"alg": ["HS256"]}, GOOD),
    "alg-HS512": handmade({"alg": "HS512"}, GOOD, digest=hashlib.sha512),
    "alg-RS256-on-hmac": handmade({"alg": "RS256"}, GOOD),
    "signature-stripped": VALID.rsplit(".", 1)[0] + ".",
    "payload-tampered": ".".join(
        [VALID.split(".")[0], b64({"tenant_id": "t_002", "role": "admin"}), VALID.split(".")[2]]
    ),
    "signature-of-another-token": ".".join(VALID.split(".")[:2] + [token().split(".")[2]]),
    "expired": token(role="admin", exp=1),
    "expired-string-exp": handmade(HS, {**GOOD, "exp": "never"}),
    "exp-infinity": handmade(HS, b'{"tenant_id":"t_001","role":"admin","exp":Infinity}'),
    "exp-nan": handmade(HS, b'{"tenant_id":"t_001","role":"admin","exp":NaN}'),
    "nbf-future": token(role="admin", nbf=4102444800),
    "nbf-infinity": handmade(HS, b'{"tenant_id":"t_001","role":"admin","nbf":Infinity}'),
    "iat-future": token(role="admin", iat=4102444800),
    "iat-string": handmade(HS, {**GOOD, "iat": "now"}),
    "payload-list": handmade(HS, [GOOD]),
    "payload-string": handmade(HS, "t_001"),
    "payload-deep": handmade(HS, b"[" * 50_000 + b"]" * 50_000),
    "payload-not-json": handmade(HS, b"{tenant_id: t_001}"),
    "payload-not-utf8": handmade(HS, b'{"tenant_id":"\xff","role":"admin"}'),
    "header-deep": handmade(b'{"alg":"HS256","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}", GOOD),
    "header-list": handmade(["HS256"], GOOD),
    "header-kid-number": handmade({**HS, "kid": 5}, GOOD),
    "header-b64-false": handmade({**HS, "b64": False, "crit": ["b64"]}, GOOD),
    "two-segments": "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnRfaWQiOiJ0In0",
    "four-segments": VALID + ".x",
    "dots": "....",
    "bad-base64": "e!J.e!J.e!J",
    "non-ascii": "tökén.tökén.tökén",
    "spaces-inside": VALID[:20] + " " + VALID[20:],
    "huge": "a" * 200_000 + "." + "b" * 200_000 + ".c",
}
MISPLACED = [
    {"Authorization": f"Token {VALID}"},
    {"Authorization": f"JWT {VALID}"},
    {"Authorization": f"Basic {VALID}"},
    {"Authorization": f"Bearer: {VALID}"},
    {"Authorization": f"Bearer\t{VALID}"},
    {"Authorization": f"Bearer {VALID} {VALID}"},
    {"Authorization": VALID},
    {"X-Authorization": f"Bearer {VALID}"},
    {"Authentication": f"Bearer {VALID}"},
    {"Cookie": f"token={VALID}; access_token={VALID}"},
    {"X-Access-Token": VALID},
]
SENT_AS_BEARER = {f"Bearer {VALID} {VALID}"}  # a bearer token, if a malformed one
NO_CREDENTIAL = [
    *(pytest.param(bearer(bad), {}, bad, id=name) for name, bad in FORGED.items()),
    *(pytest.param(headers, {}, VALID, id=" ".join(headers)) for headers in MISPLACED),
    *(
        pytest.param({}, {name: VALID}, VALID, id=f"query-{name}")
        for name in ("access_token", "token", "jwt", "Authorization")
    ),
]
CLASS_NAME = re.compile(r"[A-Z][a-z]+[A-Z]\w*|Error|jwt\b", re.ASCII)  # InvalidTokenError, PyJWT


def challenged(response, token_sent):
    """RFC 6750: `error="invalid_token"` with the detail as its description
    when a bearer token came, a bare `Bearer` challenge when none did."""
    body = problem(response, 401)
    assert not CLASS_NAME.search(body["detail"]), body["detail"]
    expected = f'Bearer error="invalid_token", error_description="{body["detail"]}"'
    assert response.headers["WWW-Authenticate"] == (expected if token_sent else "Bearer")
    return body


@pytest.mark.parametrize("headers, query, credential", NO_CREDENTIAL)
def test_a_forged_broken_or_misplaced_token_is_a_401(shared, headers, query, credential):
    client = shared.client
    given = headers.get("Authorization", "")
    token_sent = headers is not None and (
        given in SENT_AS_BEARER or given == f"Bearer {credential}"
    )
    for response in (
        client.get(API, headers=headers, query_string=query),
        client.post(API, json={"key": "new", "name": "n"}, headers=headers, query_string=query),
        client.delete(API, query_string={"key": "crm", **query}, headers=headers),
    ):
        body = challenged(response, token_sent)
        assert credential[:40] not in json.dumps(body)
        assert credential[:40] not in response.headers["WWW-Authenticate"]
    assert shared.state() == shared.before


# Tokens we signed, with odd claims: their claims decide, the same every time
# (verified tokens are remembered until their exp: a later use must not differ).

CLAIMS = [
    ({"role": "admin"}, 401),
    ({"tenant_id": "t_001"}, 401),
    ({"tenant_id": None, "role": "admin"}, 401),
    ({"tenant_id": 1, "role": "admin"}, 401),
    ({"tenant_id": 1.5, "role": "admin"}, 401),
    ({"tenant_id": True, "role": "admin"}, 401),
    ({"tenant_id": ["t_001"], "role": "admin"}, 401),
    ({"tenant_id": {"id": "t_001"}, "role": "admin"}, 401),
    ({"tenant_id": "", "role": "admin"}, 401),
    ({"tenant_id": " ", "role": "admin"}, 401),
    ({"tenant_id": " t_001", "role": "admin"}, 401),
    ({"tenant_id": "t_001\n", "role": "admin"}, 401),
    ({"tenant_id": "t_001\x00", "role": "admin"}, 401),
    ({"tenant_id": "\ud800", "role": "admin"}, 401),
    ({"tenant_id": "t" * 256, "role": "admin"}, 401),
    ({"tenant_id": "t_001", "role": None}, 401),
    ({"tenant_id": "t_001", "role": ""}, 401),
    ({"tenant_id": "t_001", "role": 3}, 401),
    ({"tenant_id": "t_001", "role": True}, 401),
    ({"tenant_id": "t_001", "role": ["admin"]}, 401),
    ({"tenant_id": "t_001", "role": ["viewer", "editor"]}, 401),
    ({"tenant_id": "t_001", "role": {"name": "admin"}}, 401),
    ({"tenant_id": "t_001", "role": "superuser"}, 403),
    ({"tenant_id": "t_001", "role": "Admin"}, 403),
    ({"tenant_id": "t_001", "role": "editor "}, 403),
    ({"tenant_id": "t_001", "role": "owner"}, 403),
    ({**GOOD, "exp": "4102444800"}, 401),
    ({**GOOD, "exp": 4102444800.5}, 200),
    ({**GOOD, "exp": 10**400}, 200),
    ({**GOOD, "tenant_id": "t_exp"}, 200),  # no exp at all
    ({**GOOD, "exp": True}, 401),
]


@pytest.mark.parametrize("claims, status", CLAIMS, ids=[repr(c) for c, _ in CLAIMS])
def test_a_signed_tokens_claims_decide_the_same_every_time(shared, claims, status):
    headers = bearer(handmade(HS, claims))
    lists = [shared.client.get(API, headers=headers) for _ in range(3)]
    assert [response.status_code for response in lists] == [status] * 3
    if status != 200:  # an accepted admin would create
        created = shared.client.post(API, json={"key": "new", "name": "n"}, headers=headers)
        for response in (*lists, created):
            if status == 401:
                challenged(response, token_sent=True)  # signed by us, but no usable identity
            else:
                problem(response, status)
    assert shared.state() == shared.before


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_hs256_signed_with_the_public_key_is_refused(make_app, rsa_key):
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app = make_app(DATASOURCES_JWT_PUBLIC_KEY=public_pem.decode())
    client = app.test_client()
    good = jwt.encode(GOOD, rsa_key, algorithm="RS256")
    assert client.get(API, headers=bearer(good)).status_code == 200
    for key in (public_pem, public_pem.strip(), public_pem.decode().replace("\n", "\r\n").encode()):
        forged = handmade(HS, GOOD, key=key)
        problem(client.post(API, json={"key": "k", "name": "n"}, headers=bearer(forged)), 401)
    unsigned = f"{b64({'alg': 'none'})}.{b64(GOOD)}."
    problem(client.get(API, headers=bearer(unsigned)), 401)
    assert rows(app) == []


@pytest.mark.parametrize(
    "tenant",
    ["t_001\r\nX-Role: admin", "t_001\n", "t_001\x00", " t_001", "t_001 ", "\t", "x" * 256],
)
def test_headers_mode_refuses_odd_tenant_values(make_app, tenant):
    app = make_app(DATASOURCES_AUTH="headers")
    environ = {"HTTP_X_TENANT_ID": tenant, "HTTP_X_ROLE": "editor"}
    response = app.test_client().post(
        API, json={"key": "k", "name": "n"}, environ_overrides=environ
    )
    problem(response, 401)
    assert rows(app) == []
