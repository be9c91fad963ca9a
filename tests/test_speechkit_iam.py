"""Service-account keys -> PS256 JWT -> IAM token, against an IAM endpoint on loopback that
verifies the signature with the key's public half."""

from __future__ import annotations

import time

import jwt
import pydantic
import pytest
from cloud_fixtures import AUDIENCE, FakeIam, ServiceAccountKeyPair, iam_tokens, start_iam

from voiced.speechkit.credentials import CredentialError, ServiceAccountKey
from voiced.speechkit.iam import IamTokenSource, make_jwt
from voiced.speechkit.settings import IamSettings


HOUR = 3600.0


@pytest.fixture(scope="module")
def key_pair():
    return ServiceAccountKeyPair()


def service_account_key(pair: ServiceAccountKeyPair) -> ServiceAccountKey:
    return ServiceAccountKey.parse(pydantic.SecretStr(pair.json()), "test")


@pytest.fixture
def iam_endpoint(key_pair):
    servicer = FakeIam(key_pair, iam_tokens(4), lifetime_s=12 * HOUR)
    server, target = start_iam(servicer)
    yield servicer, IamSettings(endpoint=target, tls=False, timeout_s=5)
    server.stop(0)


def test_jwt_is_ps256_with_the_claims_iam_requires(key_pair):
    token = make_jwt(service_account_key(key_pair), now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "PS256" and header["kid"] == key_pair.id
    claims = jwt.decode(token, key_pair.private.public_key(), algorithms=["PS256"], audience=AUDIENCE,
                        options={"verify_exp": False})
    assert claims["iss"] == key_pair.service_account_id
    assert claims["exp"] - claims["iat"] <= 3600


def test_token_is_fetched_once_and_cached(iam_endpoint, key_pair):
    servicer, settings = iam_endpoint
    source = IamTokenSource(service_account_key(key_pair), settings)
    first = source.token().get_secret_value()
    assert first == servicer.tokens[0]
    assert source.token().get_secret_value() == first and len(servicer.issued) == 1


def test_token_is_refreshed_before_it_expires(iam_endpoint, key_pair):
    servicer, settings = iam_endpoint
    now = [1000.0]
    source = IamTokenSource(service_account_key(key_pair), settings, clock=lambda: now[0])
    assert source.token().get_secret_value() == servicer.tokens[0]
    now[0] += 10.5 * HOUR  # 1.5 h left of 12: not yet
    assert source.token().get_secret_value() == servicer.tokens[0] and len(servicer.issued) == 1
    now[0] += 0.75 * HOUR  # 45 min left: the cached one still answers while the next is fetched
    assert source.token().get_secret_value() == servicer.tokens[0]
    deadline = time.monotonic() + 5
    while source.token().get_secret_value() != servicer.tokens[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert source.token().get_secret_value() == servicer.tokens[1], "not refreshed before expiry"
    assert len(servicer.issued) == 2


def test_invalidate_fetches_a_new_token(iam_endpoint, key_pair):
    servicer, settings = iam_endpoint
    source = IamTokenSource(service_account_key(key_pair), settings)
    source.token()
    source.invalidate()
    assert source.token().get_secret_value() == servicer.tokens[1]


def test_a_key_iam_does_not_know_is_refused_clearly(iam_endpoint):
    servicer, settings = iam_endpoint
    stranger = ServiceAccountKeyPair(key_id=servicer.key.id)  # same ids, another private key
    source = IamTokenSource(service_account_key(stranger), settings)
    with pytest.raises(CredentialError, match="UNAUTHENTICATED invalid JWT") as caught:
        source.token()
    assert caught.value.code == "UNAUTHENTICATED" and servicer.refused == 1
    assert "PRIVATE KEY" not in str(caught.value)


def test_unreachable_iam_is_unavailable(key_pair):
    source = IamTokenSource(service_account_key(key_pair), IamSettings(endpoint="127.0.0.1:1", tls=False,
                                                                        timeout_s=2))
    with pytest.raises(CredentialError) as caught:
        source.token()
    assert caught.value.code == "UNAVAILABLE"
