import json
import subprocess

import pytest

from tests.conftest import start_http_recorder
from voiced.actions.config import HttpAction
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.http import http_action


def test_home_assistant_service_call(http_server, monkeypatch, tmp_path):
    monkeypatch.setenv("HA_AUTHORIZATION", "Bearer secret-token")
    (tmp_path / "key").write_text("k-123\n")
    action = HttpAction(
        type="http",
        url=f"http://127.0.0.1:{http_server.server_port}/api/services/light/turn_on",
        headers={"X-Static": "1"},
        headers_from_env={"Authorization": "HA_AUTHORIZATION"},
        headers_from_file={"X-Key": tmp_path / "key"},
        json={"entity_id": "light.$room", "brightness_pct": "$brightness", "said": "$raw_text"},
    )
    match = Match(
        "LightOn", {"room": "kitchen", "brightness": 40}, "x", 1.0, "en", original_text='turn on "the" kitchen $(x)'
    )
    assert http_action(action, match) == "HTTP 200"
    method, path, headers, body = http_server.requests[0]
    assert (method, path) == ("POST", "/api/services/light/turn_on")
    assert headers["Authorization"] == "Bearer secret-token" and headers["X-Key"] == "k-123"
    assert json.loads(body) == {
        "entity_id": "light.kitchen",
        "brightness_pct": 40,
        "said": 'turn on "the" kitchen $(x)',
    }


def test_errors_are_action_errors_without_secrets(http_server, monkeypatch):
    monkeypatch.setenv("TOKEN", "Bearer very-secret")
    base = f"http://127.0.0.1:{http_server.server_port}"
    failing = HttpAction(type="http", url=base + "/fail/$room", headers_from_env={"Authorization": "TOKEN"})
    with pytest.raises(ActionError) as error:
        http_action(failing, Match("X", {"room": "a b/c"}, "x", 1.0, "en"))
    assert "HTTP 500" in str(error.value) and "/fail/a%20b%2Fc" in str(error.value)
    assert "very-secret" not in str(error.value)
    missing = HttpAction(type="http", url=base, headers_from_env={"Authorization": "VOICED_UNSET_VAR"})
    with pytest.raises(ActionError, match="VOICED_UNSET_VAR is not set"):
        http_action(missing, Match("X", {}, "x", 1.0, "en"))


def test_secrets_are_redacted_in_errors_events_and_the_httpx_log(http_server, monkeypatch, caplog):
    """A header value the HTTP library refuses is quoted in its exception; URL userinfo and
    query tokens are in every message naming the URL, httpx's own INFO line included."""
    from voiced.actions.config import ActionsSettings
    from voiced.actions.runner import ActionRunner

    monkeypatch.setenv("HA_AUTHORIZATION", "Bearer eyJ-very-secret\nX-Injected: 1")  # refused by h11
    base = f"http://bob:pa55-secret@127.0.0.1:{http_server.server_port}"
    actions = (
        HttpAction(type="http", url=base + "/api?token=tok-secret", headers_from_env={"X-Token": "HA_AUTHORIZATION"}),
        HttpAction(type="http", url=base + "/fail?token=tok-secret&room=$room"),
        HttpAction(type="http", url=base + "/ok?access_token=tok-secret"),
    )
    events = []
    caplog.set_level("INFO")
    runner = ActionRunner(ActionsSettings(), events.append)
    runner.dispatch(Match("LightOn", {"room": "kitchen"}, "x", 1.0, "en", actions)).result(timeout=60)
    runner.shutdown(10)
    failed = [e.error for e in events if e.type == "action_failed"]
    assert failed[0].startswith(f"POST http://bob:***@127.0.0.1:{http_server.server_port}/api?token=***: ")
    assert "Illegal header value" in failed[0]
    assert failed[1] == f"POST http://bob:***@127.0.0.1:{http_server.server_port}/fail?token=***&room=***: HTTP 500"
    assert [e.detail for e in events if e.type == "action_finished"] == ["HTTP 200"]
    logged = caplog.text
    assert f"POST http://bob:***@127.0.0.1:{http_server.server_port}/ok?access_token=*** " in logged  # httpx INFO
    for secret in ("eyJ-very-secret", "pa55-secret", "tok-secret"):
        assert secret not in logged and not any(secret in error for error in failed)


def test_tls_is_verified_by_default(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = start_http_recorder(tls=(cert, key))
    try:
        url = f"https://127.0.0.1:{server.server_port}/api"
        match = Match("X", {}, "x", 1.0, "en")
        with pytest.raises(ActionError, match="ConnectError"):
            http_action(HttpAction(type="http", url=url, timeout_s=5), match)
        assert http_action(HttpAction(type="http", url=url, ca_file=cert, timeout_s=5), match) == "HTTP 200"
    finally:
        server.shutdown()
        server.server_close()
