"""Identity and roles: viewer < editor < admin, the three identity sources,
the instance secret and the `token` command."""

import datetime
import os
import stat
import subprocess
import sys
import time

import jwt
import pytest
from conftest import (
    API,
    REPO,
    SECRET,
    auth,
    close,
    database_of,
    flask_cli,
    problem,
    repo_instance,
    rows,
    token,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask, g, request

from datasources import app as service
from datasources import connections

ROLES = [None, "viewer", "editor", "admin"]
ALLOWED = {"GET": "viewer", "POST": "editor", "PUT": "editor", "DELETE": "editor"}
SUCCESS = {"GET": 200, "POST": 201, "PUT": 200, "DELETE": 204}
RANK = {None: 0, "viewer": 1, "editor": 2, "admin": 3}
ALGORITHM = "The token is signed with an algorithm this API does not accept."


def unauthorized(response, token_sent=True):
    """A 401 with RFC 6750's challenge: `error="invalid_token"` and the detail
    as its description when a bearer token came; no error code when none did."""
    body = problem(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    if token_sent:
        assert challenge == f'Bearer error="invalid_token", error_description="{body["detail"]}"'
    else:
        assert challenge == "Bearer"
    return body


def call(client, method, headers):
    """One request per method that succeeds for a permitted role on tenant t_001."""
    if method == "GET":
        return client.get(API, headers=headers)
    if method == "POST":
        return client.post(API, json={"key": "new", "name": "n"}, headers=headers)
    if method == "PUT":
        return client.put(API, json={"key": "k", "name": "changed"}, headers=headers)
    return client.delete(API, query_string={"key": "k"}, headers=headers)


def pem(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


# Roles: a table over method x role.


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", list(ALLOWED))
def test_method_by_role(app, client, method, role):
    client.post(API, json={"key": "k", "name": "n"}, headers=auth())
    before = rows(app)
    headers = auth(role=role) if role else {}
    response = call(client, method, headers)
    if role is None:
        unauthorized(response, token_sent=False)
    elif RANK[role] < RANK[ALLOWED[method]]:
        detail = problem(response, 403)["detail"]
        assert detail == "This operation needs the editor role."
        assert response.headers["WWW-Authenticate"] == (
            f'Bearer error="insufficient_scope", error_description="{detail}"'
        )
    else:
        assert response.status_code == SUCCESS[method], response.data
        return
    assert rows(app) == before


@pytest.mark.parametrize(
    "headers, token_sent",
    [
        ({}, False),
        ({"Authorization": ""}, False),
        ({"Authorization": "Bearer"}, False),
        ({"Authorization": "Bearer "}, False),
        ({"Authorization": "Bearer not.a.jwt"}, True),
        ({"Authorization": "Bearer " + token(secret="another-secret-" + "y" * 32)}, True),
        ({"Authorization": "Basic dDpwYXNz"}, False),
        ({"Authorization": token()}, False),
    ],
    ids=["none", "empty", "scheme-only", "blank", "garbage", "wrong-secret", "basic", "no-scheme"],
)
def test_no_or_bad_credentials_are_401_with_a_bearer_challenge(client, headers, token_sent):
    body = unauthorized(client.get(API, headers=headers), token_sent)
    assert "Authorization" not in body["detail"]


def test_the_scheme_is_case_insensitive(client):
    response = client.get(API, headers={"Authorization": "bearer " + token(role="viewer")})
    assert response.status_code == 200


# jwt mode.


def test_hs256_token_with_the_configured_secret(app, client):
    created = client.post(API, json={"key": "k", "name": "n"}, headers=auth("t_007"))
    assert created.status_code == 201 and created.get_json()["tenantId"] == "t_007"
    assert rows(app)[0]["tenant_id"] == "t_007"


@pytest.mark.parametrize("kind, algorithm", [("rsa", "RS256"), ("ec", "ES256")])
def test_public_key_tokens(make_app, rsa_key, ec_key, kind, algorithm):
    private = rsa_key if kind == "rsa" else ec_key
    client = make_app(DATASOURCES_JWT_PUBLIC_KEY=pem(private.public_key())).test_client()
    signed = jwt.encode({"tenant_id": "t_001", "role": "editor"}, private, algorithm=algorithm)
    response = client.post(
        API, json={"key": "k", "name": "n"}, headers={"Authorization": f"Bearer {signed}"}
    )
    assert response.status_code == 201 and response.get_json()["tenantId"] == "t_001"
    other = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    forged = jwt.encode({"tenant_id": "t_001", "role": "admin"}, other, algorithm=algorithm)
    unauthorized(client.get(API, headers={"Authorization": f"Bearer {forged}"}))
    # With a public key configured, the shared secret signs nothing.
    unauthorized(client.get(API, headers=auth()))


@pytest.mark.parametrize(
    "key",
    [
        pem(ed25519.Ed25519PrivateKey.generate().public_key()),
        pem(ec.generate_private_key(ec.SECP384R1()).public_key()),
        "not a pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ],
    ids=["ed25519", "p384", "garbage", "truncated"],
)
def test_a_public_key_that_could_verify_nothing_is_refused_at_startup(make_app, key):
    with pytest.raises(ValueError):
        make_app(DATASOURCES_JWT_PUBLIC_KEY=key)


@pytest.mark.parametrize(
    "claims, status",
    [
        ({"aud": "datasources", "iss": "https://idp.example"}, 200),
        ({"aud": ["other", "datasources"], "iss": "https://idp.example"}, 200),
        ({"aud": "other", "iss": "https://idp.example"}, 401),
        ({"iss": "https://idp.example"}, 401),
        ({"aud": "datasources", "iss": "https://evil.example"}, 401),
        ({"aud": "datasources"}, 401),
    ],
)
def test_audience_and_issuer_when_set(make_app, claims, status):
    client = make_app(
        DATASOURCES_JWT_AUDIENCE="datasources", DATASOURCES_JWT_ISSUER="https://idp.example"
    ).test_client()
    response = client.get(API, headers=auth(role="viewer", **claims))
    assert response.status_code == status
    if status == 401:
        unauthorized(response)


def test_audience_and_issuer_are_not_checked_when_unset(client):
    headers = auth(role="viewer", aud="anyone", iss="anywhere")
    assert client.get(API, headers=headers).status_code == 200


def test_claim_names_are_configurable(make_app):
    client = make_app(
        DATASOURCES_JWT_TENANT_CLAIM="org", DATASOURCES_JWT_ROLE_CLAIM="https://x/role"
    ).test_client()
    signed = jwt.encode({"org": "t_042", "https://x/role": "editor"}, SECRET, algorithm="HS256")
    response = client.post(
        API, json={"key": "k", "name": "n"}, headers={"Authorization": f"Bearer {signed}"}
    )
    assert response.status_code == 201 and response.get_json()["tenantId"] == "t_042"
    # The default claim names now mean nothing.
    unauthorized(client.get(API, headers=auth()))


def test_exp_is_honoured(client):
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(minutes=5)
    assert client.get(API, headers=auth(role="viewer", exp=later)).status_code == 200
    expired = auth(role="viewer", exp=now - datetime.timedelta(seconds=5))
    assert unauthorized(client.get(API, headers=expired))["detail"] == "The token has expired."


# What is wrong with a token, in words (never a library's class name), and
# the same words in RFC 6750's challenge.

SOON = 4102444800  # 2100-01-01
AUDIENCE_AND_ISSUER = {"aud": "datasources", "iss": "https://idp.example"}
TOKEN_ERRORS = [
    ({"exp": 1}, "The token has expired."),
    ({"nbf": SOON}, "The token is not valid yet (nbf or iat is in the future)."),
    ({"iat": SOON}, "The token is not valid yet (nbf or iat is in the future)."),
    ({"secret": "another-secret-" + "y" * 32}, "The token has a bad signature."),
    ({"aud": "someone-else"}, "The token has the wrong audience (aud)."),
    ({"aud": None}, "The token has no aud claim."),
    ({"iss": "https://evil.example"}, "The token has the wrong issuer (iss)."),
    ({"iss": None}, "The token has no iss claim."),
    ({"exp": "soon"}, "The token's exp claim is not a number of seconds since 1970."),
    ({"nbf": "now"}, "The token's nbf claim is not a number of seconds since 1970."),
    ({"iat": "now"}, "The token's iat claim is not a number of seconds since 1970."),
    ({"tenant_id": None}, "The credentials name no valid tenant."),
    ({"role": None}, "The credentials name no role."),
]


@pytest.mark.parametrize("claims, detail", TOKEN_ERRORS, ids=[d for _, d in TOKEN_ERRORS])
def test_token_errors_say_in_words_what_is_wrong(make_app, claims, detail):
    client = make_app(
        DATASOURCES_JWT_AUDIENCE="datasources", DATASOURCES_JWT_ISSUER="https://idp.example"
    ).test_client()
    claims = {"tenant_id": "t_001", "role": "viewer", **AUDIENCE_AND_ISSUER, **claims}
    secret = claims.pop("secret", SECRET)
    claims = {name: value for name, value in claims.items() if value is not None}
    headers = {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}
    body = unauthorized(client.get(API, headers=headers))
    assert body["detail"] == detail


@pytest.mark.parametrize(
    "credential, detail",
    [
        ("not.a.jwt", "The token is malformed."),
        ("a.b", "The token is malformed."),
        (jwt.encode({"tenant_id": "t", "role": "admin"}, None, algorithm="none"), ALGORITHM),
        (jwt.encode({"tenant_id": "t", "role": "admin"}, SECRET * 2, algorithm="HS512"), ALGORITHM),
    ],
    ids=["garbage", "two-segments", "alg-none", "alg-hs512"],
)
def test_malformed_or_foreign_tokens_say_so(client, credential, detail):
    body = unauthorized(client.get(API, headers={"Authorization": f"Bearer {credential}"}))
    assert body["detail"] == detail


def test_a_role_too_low_is_insufficient_scope_only_for_a_bearer_token(make_app):
    """A 403 answers a bearer token with RFC 6750's `insufficient_scope`;
    behind a gateway's headers there is no token to challenge."""
    jwt_client = make_app().test_client()
    response = jwt_client.post(API, json={"key": "k", "name": "n"}, headers=auth(role="viewer"))
    assert problem(response, 403)["detail"] == "This operation needs the editor role."
    assert 'Bearer error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    gateway = make_app(DATASOURCES_AUTH="headers").test_client()
    viewer = {"X-Tenant-Id": "t_001", "X-Role": "viewer"}
    response = gateway.post(API, json={"key": "k", "name": "n"}, headers=viewer)
    problem(response, 403)
    assert "WWW-Authenticate" not in response.headers
    unauthorized(gateway.get(API, headers={"X-Role": "viewer"}), token_sent=False)


# The instance secret: made once, mode 0600, shared by every worker.


def test_instance_secret_is_made_once_and_shared(config, make_app, tmp_path):
    del config["DATASOURCES_JWT_SECRET"]  # the config make_app builds on
    first, second = make_app(), make_app()
    path = tmp_path / "datasources-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32 and secret != SECRET
    assert [p.name for p in tmp_path.glob("datasources-secret*")] == ["datasources-secret"]
    minted = first.test_cli_runner().invoke(args=["token", "--tenant", "t_1", "--role", "editor"])
    assert minted.exit_code == 0, minted.output
    headers = {"Authorization": "Bearer " + minted.output.strip()}
    created = second.test_client().post(API, json={"key": "k", "name": "n"}, headers=headers)
    assert created.status_code == 201
    # Tokens signed with any other secret are refused.
    unauthorized(second.test_client().get(API, headers=auth()))


def test_the_standalone_instance_folder_is_the_repositorys(tmp_path):
    """As README.md says: run from the repository, the secret and the SQLite
    file are kept in its instance/ (which .gitignore names)."""
    # A database and a secret of the test's: nothing is written to that folder.
    config = {
        "DATASOURCES_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        "DATASOURCES_JWT_SECRET": SECRET,
    }
    application = service.create_app(config)
    close(database_of(application))
    assert application.instance_path == os.path.join(REPO, "instance")


RACE = """
import os, sys, time
from datasources import auth
from flask import Flask
folder, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.001)
print(auth.instance_secret(Flask("racer", instance_path=folder)))
"""


def test_concurrent_first_creation_yields_one_secret(tmp_path):
    folder, go = tmp_path / "instance", tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(folder), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    # Let the interpreters start, then release them together.
    time.sleep(1.0)
    go.touch()
    secrets = {racer.communicate(timeout=30)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(secrets) == 1 and secrets != {""}
    assert os.listdir(folder) == ["datasources-secret"]
    assert (folder / "datasources-secret").read_text().strip() == secrets.pop()
    assert stat.S_IMODE((folder / "datasources-secret").stat().st_mode) == 0o600


# headers mode (a sidecar behind a trusted gateway).


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"X-Tenant-Id": "t_001", "X-Role": "editor"}, 201),
        ({"X-Tenant-Id": "t_001", "X-Role": "admin"}, 201),
        ({"X-Tenant-Id": "t_001", "X-Role": "viewer"}, 403),
        ({"X-Tenant-Id": "t_001"}, 401),
        ({"X-Role": "editor"}, 401),
        ({"X-Tenant-Id": "", "X-Role": "editor"}, 401),
        ({}, 401),
    ],
)
def test_headers_mode(make_app, headers, status):
    application = make_app(DATASOURCES_AUTH="headers")
    client = application.test_client()
    response = client.post(API, json={"key": "k", "name": "n"}, headers=headers)
    assert response.status_code == status, response.data
    if status == 201:
        assert response.get_json()["tenantId"] == "t_001"
    else:
        problem(response, status)
        assert rows(application) == []


def test_headers_mode_ignores_bearer_tokens(make_app):
    client = make_app(DATASOURCES_AUTH="headers").test_client()
    unauthorized(client.get(API, headers=auth()), token_sent=False)  # not read: not "invalid"
    viewer = {"X-Tenant-Id": "t_002", "X-Role": "viewer"}
    assert client.get(API, headers=viewer).get_json()["data"] == []


def test_an_unknown_auth_mode_is_refused_at_startup(make_app):
    with pytest.raises(ValueError, match="DATASOURCES_AUTH"):
        make_app(DATASOURCES_AUTH="none")


# Embedded: the host says who calls.


@pytest.fixture
def host(database_url, tmp_path):
    """A host app with its own login: `X-Host-User: tenant:role` stands in for its session."""
    host = Flask("host", instance_path=str(tmp_path))

    @host.before_request
    def login():
        tenant, _, role = request.headers.get("X-Host-User", "").partition(":")
        g.user = (tenant, role) if tenant else None

    @host.get("/")
    def home():
        return "host home"

    database = connections.connect_url(database_url)
    service.init_app(host, database=database, identity=lambda: g.user)
    yield host
    close(database)


@pytest.mark.parametrize(
    "who, method, status",
    [
        ("t_001:editor", "POST", 201),
        ("t_001:viewer", "GET", 200),
        ("t_001:viewer", "POST", 403),
        ("t_001:admin", "DELETE", 404),
        ("", "GET", 401),
    ],
)
def test_embedded_identity(host, who, method, status):
    client = host.test_client()
    login = {"X-Host-User": who}
    if method == "POST":
        response = client.post(API, json={"key": "k", "name": "n"}, headers=login)
    elif method == "DELETE":
        response = client.delete(API, query_string={"key": "missing"}, headers=login)
    else:
        response = client.get(API, headers=login)
    assert response.status_code == status, response.data
    if status == 201:
        assert response.get_json()["tenantId"] == "t_001"
    assert client.get("/").data == b"host home"


def test_embedded_identity_ignores_tokens_and_headers(host):
    client = host.test_client()
    headers = {**auth(), "X-Tenant-Id": "t_001", "X-Role": "editor"}
    unauthorized(client.post(API, json={"key": "k", "name": "n"}, headers=headers), False)


# The token command.


def mint(runner, tenant, role, *extra):
    return runner.invoke(args=["token", "--tenant", tenant, "--role", role, *extra])


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_token_command_mints_a_token_the_service_accepts(runner, client, role):
    result = runner.invoke(args=["token", "--tenant", "t_cli", "--role", role])
    assert result.exit_code == 0, result.output
    minted = result.output.strip()
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["tenant_id"] == "t_cli" and claims["role"] == role
    assert claims["exp"] - claims["iat"] == 3600
    headers = {"Authorization": f"Bearer {minted}"}
    response = client.post(API, json={"key": "k", "name": "n"}, headers=headers)
    assert response.status_code == (403 if role == "viewer" else 201)
    assert client.get(API, headers=headers).status_code == 200


def test_token_command_expires_in(runner, client):
    result = runner.invoke(
        args=["token", "--tenant", "t", "--role", "viewer", "--expires-in", "60"]
    )
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60
    expired = runner.invoke(
        args=["token", "--tenant", "t", "--role", "viewer", "--expires-in", "-1"]
    )
    unauthorized(client.get(API, headers={"Authorization": "Bearer " + expired.output.strip()}))


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--role", "editor"],
        ["token", "--tenant", "t"],
        ["token", "--tenant", "t", "--role", "owner"],
        ["token", "--tenant", "t", "--role", "editor", "--expires-in", "soon"],
    ],
)
def test_token_command_usage_errors(runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code == 2 and "eyJ" not in result.output


def test_token_command_carries_audience_issuer_and_claim_names(make_app):
    application = make_app(
        DATASOURCES_JWT_AUDIENCE="ds",
        DATASOURCES_JWT_ISSUER="me",
        DATASOURCES_JWT_TENANT_CLAIM="org",
        DATASOURCES_JWT_ROLE_CLAIM="perm",
    )
    result = application.test_cli_runner().invoke(
        args=["token", "--tenant", "t", "--role", "admin"]
    )
    claims = jwt.decode(result.output.strip(), SECRET, algorithms=["HS256"], audience="ds")
    assert claims["org"] == "t" and claims["perm"] == "admin" and claims["iss"] == "me"
    headers = {"Authorization": "Bearer " + result.output.strip()}
    assert application.test_client().get(API, headers=headers).status_code == 200


def test_token_command_refuses_when_a_public_key_is_configured(make_app, rsa_key):
    application = make_app(DATASOURCES_JWT_PUBLIC_KEY=pem(rsa_key.public_key()))
    result = application.test_cli_runner().invoke(
        args=["token", "--tenant", "t", "--role", "admin"]
    )
    assert result.exit_code == 2 and "private key" in result.output


@pytest.fixture
def instance(tmp_path):
    """The instance folder (secret, SQLite file) of the `flask` processes a test runs."""
    return tmp_path / "instance"


def test_flask_token_in_a_real_process(instance, client):
    before = repo_instance()
    result = flask_cli(
        instance,
        "token",
        "--tenant",
        "t_proc",
        "--role",
        "editor",
        "--expires-in",
        "120",
        DATASOURCES_JWT_SECRET=SECRET,
    )
    assert result.returncode == 0, result.stderr
    headers = {"Authorization": "Bearer " + result.stdout.strip()}
    created = client.post(API, json={"key": "k", "name": "n"}, headers=headers)
    assert created.status_code == 201 and created.get_json()["tenantId"] == "t_proc"
    # The JWT secret is set, the secret keys are not: those are made there.
    made = ["datasources-fernet-key", "datasources-fingerprint-key", "datasources.db"]
    assert sorted(os.listdir(instance)) == made
    assert repo_instance() == before


def test_flask_token_without_a_secret_uses_the_instance_secret(instance, tmp_path):
    before = repo_instance()
    result = flask_cli(instance, "token", "--tenant", "t_proc", "--role", "viewer")
    assert result.returncode == 0, result.stderr
    secret_file = instance / "datasources-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    # A second process (another worker) reads the same secret and accepts the token.
    again = flask_cli(instance, "token", "--tenant", "t_proc", "--role", "viewer")
    secret = secret_file.read_text().strip()
    for minted in (result.stdout.strip(), again.stdout.strip()):
        assert jwt.decode(minted, secret, algorithms=["HS256"])["tenant_id"] == "t_proc"
    database = f"sqlite:///{tmp_path / 'other.db'}"
    config = {"TESTING": True, "DATASOURCES_DATABASE_URL": database}
    served = service.create_app(config, instance_path=str(instance))
    headers = {"Authorization": "Bearer " + result.stdout.strip()}
    try:
        assert served.test_client().get(API, headers=headers).status_code == 200
    finally:
        close(database_of(served))
    assert repo_instance() == before
