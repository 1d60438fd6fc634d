"""Identity: who calls, for which tenant, with which role.

Three sources, chosen by configuration: a bearer JWT (default), a trusted
gateway's headers, or a host's own function when embedded.
"""

import math
import os
import secrets
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from flask import g, request

from datasources.errors import Problem
from datasources.settings import service

ROLES = {"viewer": 1, "editor": 2, "admin": 3}


def instance_secret(app):
    """A random secret made once in the instance folder (mode 0600) and
    shared by every worker: the first process to link its file wins."""
    path = os.path.join(app.instance_path, "datasources-secret")
    if not os.path.exists(path):
        os.makedirs(app.instance_path, exist_ok=True)
        draft = f"{path}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
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


def unauthorized(detail):
    return Problem(401, detail, headers={"WWW-Authenticate": "Bearer"})


def jwt_identity():
    """Tenant and role from `Authorization: Bearer <JWT>`."""
    state = service()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("A bearer token is required.")
    token = token.strip()
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
            raise unauthorized(f"The token is not valid ({type(exc).__name__}).") from None
        expiry = claims.get("exp", math.inf)
        if not isinstance(expiry, int | float):  # PyJWT also takes "4102444800"
            raise unauthorized("The token is not valid (exp is not a NumericDate).")
        if len(state.verified_tokens) >= 1024:
            state.verified_tokens.clear()
        state.verified_tokens[token] = (expiry, claims)
    return claims.get(state.settings.jwt_tenant_claim), claims.get(state.settings.jwt_role_claim)


def header_identity():
    """Tenant and role from a trusted gateway's `X-Tenant-Id` and `X-Role`."""
    return request.headers.get("X-Tenant-Id"), request.headers.get("X-Role")


def authorize(minimum):
    """The caller's tenant, once its role is at least `minimum`."""
    tenant, role = service().identity() or (None, None)
    if (
        not isinstance(tenant, str)
        or not 0 < len(tenant) <= 255
        or not tenant.isprintable()
        or tenant != tenant.strip()  # " t_001" would silently be another tenant
    ):
        raise unauthorized("The credentials name no valid tenant.")
    g.datasources_tenant = tenant  # for the request log
    if not isinstance(role, str) or not role:
        raise unauthorized("The credentials name no role.")
    if ROLES.get(role, 0) < ROLES[minimum]:
        raise Problem(403, f"This operation needs the {minimum} role.")
    return tenant
