"""The HTTP edge of the conversation API: one question to HA, its answer back (httpx).

The token is read where `home_assistant.token` says, when first needed and again when HA
refuses it: a rotated file is picked up and the question asked once more with it. It is
shown only as a fingerprint. TLS is verified unless `verify_tls: false`; redirects are not
followed (the token would go along).
Every failure is a ConversationError whose message names the URL and what went wrong.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx

from voiced import __version__
from voiced.actions.http import redact_url, scrubbed, tls_verification
from voiced.homeassistant.config import HomeAssistantSettings
from voiced.homeassistant.conversation import (
    MAX_REPLY_BYTES,
    Answer,
    ConversationError,
    ConversationMemory,
    conversation_request,
    parse_answer,
)
from voiced.speechkit.auth import CredentialError, StaticCredential

MAX_ERROR_BYTES = 4096  # of a refusal's body: HA says why in a short JSON `message`


class _TokenRefused(ConversationError):
    """HA answered 401 or 403."""


class ConversationClient:
    """Asks HA's conversation agent; thread-safe (questions may overlap). `language` is the
    daemon's recognition language, used unless the section names one."""

    def __init__(self, settings: HomeAssistantSettings, language: str, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.language = settings.language or language
        self._clock = clock
        self._token = StaticCredential("Bearer", "Home Assistant token", settings.token)
        self._memory = ConversationMemory(settings.keep_conversation_s)
        self._lock = threading.Lock()
        # one client: its connections are kept alive between questions
        self._http = httpx.Client(
            verify=tls_verification(settings.verify_tls, settings.ca_file),
            timeout=settings.timeout_s,
            follow_redirects=False,
            headers={"User-Agent": f"voiced/{__version__}"},
        )

    def ask(self, text: str) -> Answer:
        """HA's answer to `text` (ConversationError if there is none)."""
        with self._lock:
            conversation_id = self._memory.current(self._clock())
        body = conversation_request(text, self.language, self.settings.agent_id, conversation_id)
        try:
            reply = self._post(body)
        except _TokenRefused as refused:
            # read the token again (a rotated file): asked once more only if it changed
            if not self._token_changed():
                raise ConversationError(str(refused)) from None
            reply = self._post(body)
        try:
            answer = parse_answer(reply)
        except ConversationError as exc:
            raise ConversationError(f"POST {self.settings.conversation_url}: {exc}") from None
        with self._lock:
            self._memory.answered(answer.conversation_id, self._clock())
        return answer

    def _post(self, body: dict[str, str]) -> bytes:
        """The body of HA's reply to the request `body`; raises ConversationError, or
        _TokenRefused (a ConversationError) when HA refuses the token."""
        url = self.settings.conversation_url
        try:
            headers = dict(self._token.metadata())
        except CredentialError as exc:
            raise ConversationError(f"no Home Assistant token: {exc}") from None
        deadline = time.monotonic() + self.settings.timeout_s
        try:
            with self._http.stream("POST", url, json=body, headers=headers) as response:
                status = f"HTTP {response.status_code}"
                if response.status_code in (401, 403):
                    raise _TokenRefused(f"POST {url}: {status}: Home Assistant refused the {self._token.describe()}")
                if response.status_code >= 400:
                    raise ConversationError(f"POST {url}: {status}{self._refusal(response)}")
                if response.is_redirect:  # not followed: the token would go along
                    where = redact_url(response.headers.get("location", ""))
                    raise ConversationError(
                        f"POST {url}: {status}: redirected to {where!r}, not followed "
                        "(set home_assistant.url to the address it redirects to)"
                    )
                return self._read(response, deadline, url)
        except httpx.TimeoutException:
            raise ConversationError(f"POST {url}: no answer within {self.settings.timeout_s:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # h11 refuses a bad header value
            message = scrubbed(str(exc), url, list(headers.values()))
            raise ConversationError(f"POST {url}: {type(exc).__name__}: {message}") from None

    def _token_changed(self) -> bool:
        with self._lock:
            before = self._token.metadata()
            try:
                self._token.refresh()
            except CredentialError:
                return False  # the next question says what is wrong with it
            return self._token.metadata() != before

    def _read(self, response: httpx.Response, deadline: float, url: str) -> bytes:
        """The body, within MAX_REPLY_BYTES and the timeout as a whole (httpx's own timeout is
        per read: a server that trickles would never reach it)."""
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise ConversationError(f"POST {url}: the reply is longer than {MAX_REPLY_BYTES} bytes")
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the reply took too long")
            chunks.append(chunk)
        return b"".join(chunks)

    def _refusal(self, response: httpx.Response) -> str:
        """What HA says of an error status: ": " and the `message` of its JSON body, if any."""
        if response.status_code == 404:
            return ": no conversation API there (is home_assistant.url Home Assistant's address?)"
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= MAX_ERROR_BYTES:
                break
        try:
            said = json.loads(body[:MAX_ERROR_BYTES]).get("message")
        except (ValueError, AttributeError, UnicodeDecodeError):
            said = None
        return f": {said[:200]}" if isinstance(said, str) and said else ""

    def close(self) -> None:
        self._http.close()
