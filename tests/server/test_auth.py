"""`voiced serve` auth never switches itself off: configured auth with no usable key refuses to
start, empty keys are configuration errors, an empty credential never passes (real processes,
real gRPC on loopback)."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pydantic
import pytest

from tests.server.test_service import config_request, rejected
from voiced.config.loader import ConfigError
from voiced.server.app import start_server
from voiced.server.config import AuthSettings, ServerSettings


def serve(config, timeout: float = 60) -> subprocess.CompletedProcess:
    """`voiced serve` on any free port; a server that starts runs until the timeout fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "voiced", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("section", "content"), [("api_key_files", ""), ("api_key_files", "  \n\t\n"), ("bearer_token_files", "\n")]
)
def test_serve_refuses_to_start_when_a_key_file_holds_no_key(tmp_path, section, content):
    keys = tmp_path / "keys"
    keys.write_text(content)
    config = tmp_path / "voiced.yaml"
    config.write_text(f"server:\n  auth:\n    {section}: [{keys}]\n")
    child = serve(config)
    assert child.returncode == 2
    assert f"{keys}:1:1" in child.stderr and "holds no key" in child.stderr


def test_one_empty_file_among_good_ones_is_refused_too(tmp_path):
    good, empty = tmp_path / "good", tmp_path / "empty"
    good.write_text("key-1\n")
    empty.write_text("")
    with pytest.raises(ConfigError, match="holds no key") as refused:
        start_server(ServerSettings(auth=AuthSettings(api_key_files=(good,), bearer_token_files=(empty,))))
    assert str(empty) in str(refused.value) and "key-1" not in str(refused.value)


def test_an_unreadable_key_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        start_server(ServerSettings(auth=AuthSettings(api_key_files=(tmp_path / "missing",))))


@pytest.mark.parametrize("key", ['""', '"   "', '"key with space"'])
def test_an_empty_inline_key_is_a_located_config_error(tmp_path, key):
    config = tmp_path / "voiced.yaml"
    config.write_text(f"server:\n  auth:\n    api_keys:\n      - good-key\n      - {key}\n")
    child = serve(config)
    assert child.returncode == 2
    assert f"{config}:5:9" in child.stderr and "server.auth.api_keys.1" in child.stderr


def test_empty_bearer_tokens_are_refused_by_validation():
    with pytest.raises(pydantic.ValidationError, match="empty key"):
        AuthSettings(bearer_tokens=("",))


@pytest.fixture(scope="module")
def file_auth_server(tmp_path_factory):
    keys = tmp_path_factory.mktemp("auth") / "keys"
    keys.write_text("\n  key-1  \n\nkey-2\n")
    server = start_server(ServerSettings(auth=AuthSettings(api_key_files=(keys,))))
    yield server
    server.stop()


@pytest.mark.parametrize("header", ["Api-Key", "Api-Key ", "Api-Key  ", "Bearer", "Bearer ", " "])
def test_a_bare_scheme_with_no_key_never_passes(file_auth_server, header):
    error = rejected(file_auth_server.target, [config_request()], [("authorization", header)])
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_keys_read_from_a_file_are_accepted_without_their_blank_lines(file_auth_server):
    for key in ("key-1", "key-2"):
        error = rejected(
            file_auth_server.target, [config_request(language_code="xx")], [("authorization", f"Api-Key {key}")]
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # past auth: the spec is what is refused
