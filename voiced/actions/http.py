"""The `http` action (httpx): templated URL and JSON body, secret headers, TLS verified.

What it reports (events, log) never carries a secret: header values (any header: an
exception like h11's "Illegal header value b'Bearer ...'" would quote it), the password of
URL userinfo and every query value are replaced by "***". httpx's own INFO log line of each
request is redacted the same way.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from voiced.actions.config import HttpAction
from voiced.actions.context import Match
from voiced.actions.errors import ActionError
from voiced.actions.templating import render, render_data, template_values, url_component
from voiced.config.loader import ConfigError, read_text

REDACTED = "***"


def redact_url(url: str) -> str:
    """`url` with the userinfo's password and every query value replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(f"{quote(name, safe='')}={REDACTED}" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _RedactedUrls(logging.Filter):
    """httpx logs `HTTP Request: POST <url> "HTTP/1.1 200 OK"` at INFO: the URL redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            # httpx passes its URL object: whatever it is, its text is redacted
            record.args = tuple(redact_url(str(arg)) if type(arg).__name__ == "URL" else arg for arg in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactedUrls())


def _secret_headers(action: HttpAction) -> dict[str, str]:
    headers = {}
    for name, variable in action.headers_from_env.items():
        value = os.environ.get(variable)
        if value is None:
            raise ActionError(f"header {name}: environment variable {variable} is not set")
        headers[name] = value
    for name, path in action.headers_from_file.items():
        try:
            headers[name] = read_text(path, "secret file").strip()  # a regular file, bounded
        except ConfigError as exc:
            raise ActionError(f"header {name}: {path} {exc.problems[0].message}") from None
    return headers


def scrubbed(text: str, url: str, secrets: list[str]) -> str:
    """`text` (an exception's message) without the URL's secrets or any secret value, in any
    of the forms a message may quote it (as is, or escaped inside a bytes repr)."""
    text = text.replace(url, redact_url(url))
    parts = urlsplit(url)
    hidden = [value for _, value in parse_qsl(parts.query, keep_blank_values=True)] + [parts.password or ""]
    for secret in sorted({s for s in secrets + hidden if len(s) >= 3}, key=len, reverse=True):
        for form in {secret, repr(secret)[1:-1], repr(secret.encode(errors="replace"))[2:-1]}:
            text = text.replace(form, REDACTED)
    return text


def tls_verification(verify_tls: bool, ca_file: Path | None) -> bool | ssl.SSLContext:
    """httpx's `verify`: the system's CA roots, `ca_file` instead, or no verification."""
    if verify_tls and ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return verify_tls


def http_action(action: HttpAction, match: Match) -> str:
    import httpx  # ~7 MB: loaded by the first http action, not by every daemon

    values = template_values(match)
    url = render(action.url, values, escape=url_component)
    headers = {**action.headers, **_secret_headers(action)}
    shown = f"{action.method} {redact_url(url)}"
    verify = tls_verification(action.verify_tls, action.ca_file)
    body = render_data(action.json_body, values) if action.json_body is not None else None
    try:
        with httpx.Client(verify=verify, timeout=action.timeout_s) as client:
            response = client.request(action.method, url, headers=headers, json=body)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # h11 refuses a bad header value
        message = scrubbed(str(exc), url, list(headers.values()))
        raise ActionError(f"{shown}: {type(exc).__name__}: {message}") from None
    if response.status_code >= 400:
        raise ActionError(f"{shown}: HTTP {response.status_code}")
    return f"HTTP {response.status_code}"
