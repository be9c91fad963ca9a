"""The `http` action (httpx): templated URL and JSON body, secret headers, TLS verified."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from voiced.actions.config import HttpAction
from voiced.actions.process import ActionError
from voiced.actions.templating import render, render_data, template_values, url_component

if TYPE_CHECKING:
    from voiced.commands.matching import Match


def _secret_headers(action: HttpAction) -> dict[str, str]:
    headers = {}
    for name, variable in action.headers_from_env.items():
        value = os.environ.get(variable)
        if value is None:
            raise ActionError(f"header {name}: environment variable {variable} is not set")
        headers[name] = value
    for name, path in action.headers_from_file.items():
        try:
            headers[name] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ActionError(f"header {name}: cannot read {path}: {exc.strerror}") from None
    return headers


def http_action(action: HttpAction, match: Match) -> str:
    import httpx  # ~7 MB: loaded by the first http action, not by every daemon

    values = template_values(match)
    url = render(action.url, values, escape=url_component)
    headers = {**action.headers, **_secret_headers(action)}
    verify: bool | ssl.SSLContext = action.verify_tls
    if action.verify_tls and action.ca_file:
        verify = ssl.create_default_context(cafile=str(action.ca_file))
    body = render_data(action.json_body, values) if action.json_body is not None else None
    try:
        with httpx.Client(verify=verify, timeout=action.timeout_s) as client:
            response = client.request(action.method, url, headers=headers, json=body)
    except httpx.HTTPError as exc:
        # the exception text names the URL, never the headers
        raise ActionError(f"{action.method} {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 400:
        raise ActionError(f"{action.method} {url}: HTTP {response.status_code}")
    return f"HTTP {response.status_code}"
