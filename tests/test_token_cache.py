"""Verified tokens are remembered (a client's repeated token skips PyJWT),
but never past their `exp`, and only byte for byte."""

import time

from conftest import API, auth, token


def test_a_remembered_token_still_expires(client):
    expiry = int(time.time()) + 2
    headers = auth(exp=expiry)
    assert client.get(API, headers=headers).status_code == 200
    assert client.get(API, headers=headers).status_code == 200
    time.sleep(max(0.0, expiry - time.time()) + 0.1)
    response = client.get(API, headers=headers)
    assert response.status_code == 401
    assert response.json["detail"] == "The token has expired."


def test_a_remembered_token_does_not_vouch_for_a_tampered_one(client):
    good = token(exp=int(time.time()) + 60)
    assert client.get(API, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    header, payload, signature = good.split(".")
    forged = ".".join(
        [header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")]
    )
    response = client.get(API, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    other_role = token(role="admin", exp=int(time.time()) + 60, secret="another-secret-" + "y" * 32)
    response = client.get(API, headers={"Authorization": f"Bearer {other_role}"})
    assert response.status_code == 401
