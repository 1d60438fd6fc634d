"""Identity: who calls, for which tenant, with which role.

Three sources, chosen by configuration: a bearer JWT (default), a trusted
gateway's headers, or a host's own function when embedded.
"""

import math
import os
import re
import secrets
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import g, request

from datasources.errors import Problem
from datasources.settings import service

ROLES = {"viewer": 1, "editor": 2, "admin": 3}


def instance_secret(app, name="datasources-secret", make=lambda: secrets.token_urlsafe(48)):
    """A random secret (`make()`) made once in the instance folder's file
    `name` (mode 0600) and shared by every worker: the first process to
    link its file wins."""
    path = os.path.join(app.instance_path, name)
    if not os.path.exists(path):
        os.makedirs(app.instance_path, exist_ok=True)
        draft = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(make())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    with open(path) as secret:
        return secret.read().strip()


def public_key_algorithm(key):
    """RS256 for an RSA key, ES256 for a P-256 key: a key of any other kind
    would verify no token at all, so it is refused at start-up."""
    if isinstance(key, RSAPublicKey):
        return "RS256"
    if isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
        return "ES256"
    raise ValueError("DATASOURCES_JWT_PUBLIC_KEY must be an RSA or a P-256 (ES256) public key.")


NOT_A_TIME = "The token's {} claim is not a number of seconds since 1970."
# PyJWT's refusals in words, most specific first (InvalidSignatureError is a
# DecodeError): a client learns what is wrong, never a library's class name.
TOKEN_ERRORS = (
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf or iat is in the future)."),
    (jwt.InvalidSignatureError, "The token has a bad signature."),
    (jwt.InvalidAudienceError, "The token has the wrong audience (aud)."),
    (jwt.InvalidIssuerError, "The token has the wrong issuer (iss)."),
    (jwt.InvalidAlgorithmError, "The token is signed with an algorithm this API does not accept."),
    (jwt.InvalidIssuedAtError, NOT_A_TIME.format("iat")),
    (jwt.PyJWTError, "The token is malformed."),
)
CLAIM_FORMAT = re.compile(r"\((exp|nbf|iat)\) must be")


def token_error(exc):
    """What is wrong with a token PyJWT refused, in words."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token has no {exc.claim} claim."
    claim = CLAIM_FORMAT.search(str(exc))  # a DecodeError names the claim only in its text
    if claim:
        return NOT_A_TIME.format(claim[1])
    return next(words for kind, words in TOKEN_ERRORS if isinstance(exc, kind))


def unauthorized(detail, token_sent=False):
    """A 401. RFC 6750: a challenge without an error code when no bearer
    token came, `error="invalid_token"` and its description when one did."""
    challenge = "Bearer"
    if token_sent:
        challenge = f'Bearer error="invalid_token", error_description="{detail}"'
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


def jwt_identity():
    """Tenant and role from `Authorization: Bearer <JWT>`."""
    state = service()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip(" \t")  # HTTP's whitespace: str.strip() would also drop \x1c-\x1f
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("A bearer token is required.")
    # A token verified once stays valid until its `exp` (its signature, `nbf`
    # and `iat` cannot change), so a client's repeated token skips PyJWT.
    expiry, claims = state.verified_tokens.get(token, (0, None))
    if time.time() >= expiry:
        try:
            claims = jwt.decode(
                token,
                state.jwt_key,
                algorithms=state.jwt_algorithms,
                audience=state.settings.jwt_audience,
                issuer=state.settings.jwt_issuer,
                options={"verify_aud": state.settings.jwt_audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(token_error(exc), token_sent=True) from None
        expiry = claims.get("exp", math.inf)
        if not isinstance(expiry, int | float):  # PyJWT also takes "4102444800"
            raise unauthorized(NOT_A_TIME.format("exp"), token_sent=True)
        if len(state.verified_tokens) >= 1024:
            state.verified_tokens.clear()
        state.verified_tokens[token] = (expiry, claims)
    return claims.get(state.settings.jwt_tenant_claim), claims.get(state.settings.jwt_role_claim)


def header_identity():
    """Tenant and role from a trusted gateway's `X-Tenant-Id` and `X-Role`."""
    return utf8_header("X-Tenant-Id"), utf8_header("X-Role")


def utf8_header(name):
    """A header as the UTF-8 it was sent in (WSGI hands each byte over as a
    Latin-1 character: `té` would read `tÃ©`); None if it is not UTF-8."""
    value = request.headers.get(name)
    try:
        return None if value is None else value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def authorize(minimum):
    """The caller's tenant, once its role is at least `minimum`."""
    tenant, role = service().identity() or (None, None)
    if (
        not isinstance(tenant, str)
        or not 0 < len(tenant) <= 255
        or not tenant.isprintable()
        or tenant != tenant.strip()  # " t_001" would silently be another tenant
    ):
        raise unauthorized("The credentials name no valid tenant.", token_sent=bearer())
    g.datasources_tenant = tenant  # for the request log
    if not isinstance(role, str) or not role:
        raise unauthorized("The credentials name no role.", token_sent=bearer())
    if ROLES.get(role, 0) < ROLES[minimum]:
        detail = f"This operation needs the {minimum} role."
        # RFC 6750: a valid token with too few rights is `insufficient_scope`.
        challenge = f'Bearer error="insufficient_scope", error_description="{detail}"'
        raise Problem(403, detail, headers={"WWW-Authenticate": challenge} if bearer() else None)
    g.datasources_role = role
    return tenant


def bearer():
    """Whether the identity came in a bearer token (not a gateway's or host's)."""
    return service().identity is jwt_identity
