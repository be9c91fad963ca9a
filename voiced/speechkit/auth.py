"""Credentials for the recognizer: read from where the YAML says, turned into gRPC metadata.

A secret is held only as a pydantic SecretStr and shows up in logs and messages as a short
SHA-256 fingerprint (`sha256:1a2b3c4d5e6f`), which tells two keys apart without revealing
either. Every failure (missing file, unset variable, refused key) is a CredentialError whose
message names the source and the fingerprint, never the value.

Service-account keys become IAM tokens here too (IamTokenSource): a PS256 JWT signed with the
key (kid = key id, iss = service account id, aud = the IAM token URL, valid 1 h at most) is
exchanged at `yandex.cloud.iam.v1.IamTokenService/Create` for an IAM token that lives up to
12 h. The token is cached and refreshed well before it expires: once a tenth of its life (at most
1 h) is left, the next caller still gets the cached token while one background call fetches the
next, so no session waits for IAM unless there is no valid token at all. A failed background
refresh keeps the old token and is tried again after `RETRY_AFTER_FAILURE_S`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import grpc
import pydantic

from voiced import __version__
from voiced.config.loader import ConfigError, read_text
from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2 as iam
from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2_grpc as iam_grpc
from voiced.speechkit.config import IamSettings, RecognitionSettings, SecretSource

log = logging.getLogger(__name__)

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"  # set by systemd for LoadCredential=


class CredentialError(Exception):
    """A credential cannot be had. `code` is the gRPC status name it amounts to."""

    def __init__(self, message: str, code: str = "UNAUTHENTICATED"):
        super().__init__(message)
        self.code = code


def fingerprint(secret: str | pydantic.SecretStr) -> str:
    value = secret.get_secret_value() if isinstance(secret, pydantic.SecretStr) else secret
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def read_secret(source: SecretSource, environ: Mapping[str, str] | None = None) -> pydantic.SecretStr:
    """The secret's text, surrounding whitespace stripped (files usually end with a newline)."""
    environ = os.environ if environ is None else environ
    if source.env is not None:
        if not environ.get(source.env, "").strip():
            raise CredentialError(f"cannot read the credential from {source.describe()}: it is not set")
        return pydantic.SecretStr(environ[source.env].strip())
    if source.credential is not None:
        directory = environ.get(CREDENTIALS_DIRECTORY)
        if not directory:
            raise CredentialError(
                f"cannot read the {source.describe()}: ${CREDENTIALS_DIRECTORY} is not set "
                "(add LoadCredential= to the unit)"
            )
        path = Path(directory) / source.credential
    else:
        assert source.file is not None  # a SecretSource names exactly one source
        path = source.file
    try:
        text = read_text(path, "credential").strip()  # a regular file, bounded (not a FIFO, not /dev/zero)
    except ConfigError as exc:
        # the problem names the path and the reason ("cannot read the credential: ..."), never the content
        raise CredentialError(f"{source.describe()}: {exc.problems[0].message}") from None
    if not text:
        raise CredentialError(f"the credential in {source.describe()} is empty")
    return pydantic.SecretStr(text)


class ServiceAccountKey(pydantic.BaseModel):
    """An authorized key as `yc iam key create` writes it (other fields ignored)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    id: str = pydantic.Field(min_length=1)
    service_account_id: str = pydantic.Field(min_length=1)
    private_key: pydantic.SecretStr

    @classmethod
    def parse(cls, text: pydantic.SecretStr, where: str) -> ServiceAccountKey:
        try:
            return cls.model_validate(json.loads(text.get_secret_value()))
        except (ValueError, pydantic.ValidationError) as exc:
            # only field names and kinds of error: pydantic's messages would echo the input
            problems = (
                ", ".join(".".join(map(str, e["loc"])) or e["type"] for e in exc.errors())
                if isinstance(exc, pydantic.ValidationError)
                else "not JSON"
            )
            raise CredentialError(
                f"the service-account key in {where} is not an authorized key "
                f"(id, service_account_id, private_key): {problems}"
            ) from None


class Credentials(Protocol):
    def metadata(self) -> list[tuple[str, str]]:
        """`authorization` metadata for a new call; raises CredentialError."""

    def refresh(self) -> None:
        """After UNAUTHENTICATED: get the credential afresh (re-read it, or a new token)."""

    def describe(self) -> str:
        """What is used, for messages: kind, source and fingerprint."""


class StaticCredential:
    """An API key or an IAM token read from its source; re-read on refresh (rotated files)."""

    def __init__(self, scheme: str, kind: str, source: SecretSource):
        self.scheme = scheme
        self.kind = kind
        self.source = source
        self._secret: pydantic.SecretStr | None = None

    def metadata(self) -> list[tuple[str, str]]:
        if self._secret is None:
            self.refresh()
        assert self._secret is not None  # refresh() sets it or raises
        return [("authorization", f"{self.scheme} {self._secret.get_secret_value()}")]

    def refresh(self) -> None:
        secret = read_secret(self.source)
        if self._secret is None or secret != self._secret:
            log.info("using %s %s from %s", self.kind, fingerprint(secret), self.source.describe())
        self._secret = secret

    def describe(self) -> str:
        shown = f" {fingerprint(self._secret)}" if self._secret is not None else ""
        return f"{self.kind}{shown} from {self.source.describe()}"


class ServiceAccountCredential:
    """IAM tokens made from a service-account key (IamTokenSource, below)."""

    def __init__(self, source: SecretSource, settings: RecognitionSettings):
        key = ServiceAccountKey.parse(read_secret(source), source.describe())
        self.source = source
        self.key_id = key.id
        self.tokens = IamTokenSource(key, settings.iam)
        log.info("using service-account key %s of %s from %s", key.id, key.service_account_id, source.describe())

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.tokens.token().get_secret_value()}")]

    def refresh(self) -> None:
        self.tokens.invalidate()

    def describe(self) -> str:
        return f"IAM token of service-account key {self.key_id} from {self.source.describe()}"


def credentials_for(settings: RecognitionSettings) -> Credentials | None:
    """The configured credential, None when none is (a local server without auth).

    A service-account key is read and parsed here, so a broken one fails at start."""
    if settings.api_key is not None:
        return StaticCredential("Api-Key", "API key", settings.api_key)
    if settings.iam_token is not None:
        return StaticCredential("Bearer", "IAM token", settings.iam_token)
    if settings.service_account_key is not None:
        return ServiceAccountCredential(settings.service_account_key, settings)
    return None


AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
JWT_LIFETIME_S = 3600  # the service's maximum
MAX_REFRESH_MARGIN_S = 3600.0
RETRY_AFTER_FAILURE_S = 30.0


def make_jwt(key: ServiceAccountKey, now: float, lifetime_s: int = JWT_LIFETIME_S, audience: str = AUDIENCE) -> str:
    """The signed request for an IAM token (now = Unix time)."""
    claims = {"iss": key.service_account_id, "aud": audience, "iat": int(now), "exp": int(now) + lifetime_s}
    import jwt  # PyJWT with cryptography, ~11 MB: only for service-account keys

    try:
        return jwt.encode(claims, key.private_key.get_secret_value(), algorithm="PS256", headers={"kid": key.id})
    except (ValueError, TypeError, jwt.PyJWTError) as exc:  # not a PEM RSA private key
        raise CredentialError(
            f"service-account key {key.id}: the private_key cannot sign ({type(exc).__name__})"
        ) from None


def open_iam_channel(settings: IamSettings) -> grpc.Channel:
    options = [("grpc.primary_user_agent", f"voiced/{__version__}")]
    if not settings.uses_tls():
        return grpc.insecure_channel(settings.endpoint, options=options)
    roots = settings.ca_file.read_bytes() if settings.ca_file is not None else None
    return grpc.secure_channel(
        settings.endpoint, grpc.ssl_channel_credentials(root_certificates=roots), options=options
    )


class _Token:
    def __init__(self, value: pydantic.SecretStr, expires_at: float, refresh_at: float):
        self.value = value
        self.expires_at = expires_at  # on the monotonic clock
        self.refresh_at = refresh_at


class IamTokenSource:
    """A cached IAM token for one key. Thread-safe; `clock` is monotonic seconds."""

    def __init__(self, key: ServiceAccountKey, settings: IamSettings, clock: Callable[[], float] = time.monotonic):
        self.key = key
        self.settings = settings
        self._clock = clock
        self._channel = open_iam_channel(settings)
        self._stub = iam_grpc.IamTokenServiceStub(self._channel)
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._refreshing = False
        self._next_try = 0.0  # after a failed background refresh
        self.fetches = 0  # tokens obtained, for tests and logs

    def token(self) -> pydantic.SecretStr:
        """A valid token: the cached one, or one fetched now if none is valid (CredentialError)."""
        now = self._clock()
        with self._lock:
            cached = self._token
            if cached is not None and now < cached.expires_at:
                if now >= cached.refresh_at and not self._refreshing and now >= self._next_try:
                    self._refreshing = True
                    threading.Thread(target=self._refresh_ahead, name="iam-refresh", daemon=True).start()
                return cached.value
        return self._fetch().value

    def invalidate(self) -> None:
        """The service refused the token: the next `token()` fetches a new one."""
        with self._lock:
            self._token = None

    def close(self) -> None:
        self._channel.close()

    def _refresh_ahead(self) -> None:
        try:
            self._fetch()
        except CredentialError as exc:
            log.warning("IAM token refresh failed, keeping the current token for now: %s", exc)
            with self._lock:
                self._next_try = self._clock() + RETRY_AFTER_FAILURE_S
        finally:
            with self._lock:
                self._refreshing = False

    def _fetch(self) -> _Token:
        request = iam.CreateIamTokenRequest(jwt=make_jwt(self.key, time.time()))
        try:
            response = self._stub.Create(request, timeout=self.settings.timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if error.code() is not None else "UNKNOWN"
            # UNAVAILABLE (IAM unreachable) stays retryable; anything else is a refused key
            raise CredentialError(
                f"IAM token exchange at {self.settings.endpoint} for key {self.key.id} "
                f"failed: {code} {error.details() or ''}".rstrip(),
                code="UNAVAILABLE" if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else "UNAUTHENTICATED",
            ) from None
        now = self._clock()
        lifetime = response.expires_at.ToMicroseconds() / 1e6 - time.time()
        if not response.iam_token or lifetime <= 0:
            raise CredentialError(f"IAM at {self.settings.endpoint} returned no usable token for key {self.key.id}")
        margin = min(MAX_REFRESH_MARGIN_S, lifetime / 10)
        token = _Token(pydantic.SecretStr(response.iam_token), now + lifetime, now + lifetime - margin)
        with self._lock:
            self._token = token
            self.fetches += 1
        log.info("IAM token %s for key %s, valid %.0f s", fingerprint(token.value), self.key.id, lifetime)
        return token
