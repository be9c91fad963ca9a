"""Reading credentials from files, environment variables and systemd's credentials directory."""

from __future__ import annotations

import pydantic
import pytest

from voiced.speechkit.credentials import (CredentialError, ServiceAccountKey, StaticCredential, credentials_for,
                                          fingerprint, read_secret)
from voiced.speechkit.settings import RecognitionSettings, SecretSource

SECRET = "AQVN-very-secret-api-key-0123456789"


def test_each_source_gives_the_secret_stripped(tmp_path, monkeypatch):
    (tmp_path / "key").write_text(SECRET + "\n")
    monkeypatch.setenv("VOICED_TEST_KEY", SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    for source in ({"file": tmp_path / "key"}, {"env": "VOICED_TEST_KEY"}, {"credential": "key"}):
        secret = read_secret(SecretSource(**source))
        assert isinstance(secret, pydantic.SecretStr) and secret.get_secret_value() == SECRET
        assert SECRET not in repr(secret) and SECRET not in str(secret)


@pytest.mark.parametrize(("source", "expected"), [
    ({"env": "VOICED_UNSET_VARIABLE"}, "env VOICED_UNSET_VARIABLE: it is not set"),
    ({"credential": "stt-key"}, "$CREDENTIALS_DIRECTORY is not set"),
    ({"file": "/nonexistent/voiced/key"}, "No such file"),
])
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
