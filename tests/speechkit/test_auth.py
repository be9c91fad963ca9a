"""Credentials read from files, environment variables and systemd's credentials directory, and
IAM tokens made from a service-account key (against an IAM server that checks the JWT)."""

from __future__ import annotations

import time

import jwt
import pydantic
import pytest

from tests.cloud_fixtures import AUDIENCE, FakeIam, ServiceAccountKeyPair, iam_tokens, start_iam
from voiced.speechkit.auth import (
    CredentialError,
    IamTokenSource,
    ServiceAccountKey,
    StaticCredential,
    credentials_for,
    fingerprint,
    make_jwt,
    read_secret,
)
from voiced.speechkit.config import IamSettings, RecognitionSettings, SecretSource

SECRET = "AQVN-very-secret-api-key-0123456789"


def test_each_source_gives_the_secret_stripped(tmp_path, monkeypatch):
    (tmp_path / "key").write_text(SECRET + "\n")
    monkeypatch.setenv("VOICED_TEST_KEY", SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    for source in ({"file": tmp_path / "key"}, {"env": "VOICED_TEST_KEY"}, {"credential": "key"}):
        secret = read_secret(SecretSource(**source))
        assert isinstance(secret, pydantic.SecretStr) and secret.get_secret_value() == SECRET
        assert SECRET not in repr(secret) and SECRET not in str(secret)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"env": "VOICED_UNSET_VARIABLE"}, "env VOICED_UNSET_VARIABLE: it is not set"),
        ({"credential": "stt-key"}, "$CREDENTIALS_DIRECTORY is not set"),
        ({"file": "/nonexistent/voiced/key"}, "No such file"),
    ],
)
def test_a_missing_secret_says_where_it_was_looked_for(source, expected, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(CredentialError, match=expected.replace("$", r"\$")) as caught:
        read_secret(SecretSource(**source))
    assert caught.value.code == "UNAUTHENTICATED"


def test_a_source_is_exactly_one_place():
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        SecretSource(file="/a", env="B")
    with pytest.raises(pydantic.ValidationError):
        SecretSource(credential="../etc/passwd")


def test_fingerprint_tells_keys_apart_without_showing_them():
    assert fingerprint(SECRET) == fingerprint(pydantic.SecretStr(SECRET))
    assert fingerprint(SECRET) != fingerprint(SECRET + "x")
    assert SECRET not in fingerprint(SECRET) and fingerprint(SECRET).startswith("sha256:")


def test_static_credentials_become_authorization_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICED_TEST_KEY", SECRET)
    api_key = credentials_for(RecognitionSettings(api_key={"env": "VOICED_TEST_KEY"}))
    assert api_key.metadata() == [("authorization", f"Api-Key {SECRET}")]
    assert SECRET not in api_key.describe() and fingerprint(SECRET) in api_key.describe()
    (tmp_path / "token").write_text("t1.old\n")
    token = StaticCredential("Bearer", "IAM token", SecretSource(file=tmp_path / "token"))
    assert token.metadata() == [("authorization", "Bearer t1.old")]
    (tmp_path / "token").write_text("t1.rotated\n")  # e.g. by a timer refreshing it
    token.refresh()
    assert token.metadata() == [("authorization", "Bearer t1.rotated")]
    assert credentials_for(RecognitionSettings()) is None


def test_a_broken_service_account_key_is_refused_without_echoing_it():
    leaky = pydantic.SecretStr('{"id": "k", "service_account_id": "s", "private_key": 12345678901234}')
    with pytest.raises(CredentialError, match="private_key") as caught:
        ServiceAccountKey.parse(leaky, "file /x")
    assert "12345678901234" not in str(caught.value)
    with pytest.raises(CredentialError, match="not JSON"):
        ServiceAccountKey.parse(pydantic.SecretStr("-----BEGIN PRIVATE KEY-----"), "file /x")


def test_settings_refuse_two_credentials_and_folder_id_for_service_accounts():
    with pytest.raises(pydantic.ValidationError, match="at most one credential"):
        RecognitionSettings(api_key={"env": "A"}, iam_token={"env": "B"})
    with pytest.raises(pydantic.ValidationError, match="folder_id is for user accounts"):
        RecognitionSettings(api_key={"env": "A"}, folder_id="b1g")
    assert RecognitionSettings(iam_token={"env": "B"}, folder_id="b1g").folder_id == "b1g"


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
    claims = jwt.decode(
        token, key_pair.private.public_key(), algorithms=["PS256"], audience=AUDIENCE, options={"verify_exp": False}
    )
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
    source = IamTokenSource(service_account_key(key_pair), IamSettings(endpoint="127.0.0.1:1", tls=False, timeout_s=2))
    with pytest.raises(CredentialError) as caught:
        source.token()
    assert caught.value.code == "UNAVAILABLE"
