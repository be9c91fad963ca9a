"""IAM tokens from a service-account authorized key.

A PS256 JWT signed with the key (kid = key id, iss = service account id, aud = the IAM
token URL, valid 1 h at most) is exchanged at `yandex.cloud.iam.v1.IamTokenService/Create`
for an IAM token that lives up to 12 h. The token is cached and refreshed well before it
expires: once a tenth of its life (at most 1 h) is left, the next caller still gets the
cached token while one background call fetches the next, so no session waits for IAM
unless there is no valid token at all. A failed background refresh keeps the old token
and is tried again after `RETRY_AFTER_FAILURE_S`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc
import jwt
import pydantic

from voiced import __version__
from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2 as iam
from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2_grpc as iam_grpc
from voiced.speechkit.credentials import CredentialError, ServiceAccountKey, fingerprint
from voiced.speechkit.settings import IamSettings

log = logging.getLogger(__name__)

AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
JWT_LIFETIME_S = 3600  # the service's maximum
MAX_REFRESH_MARGIN_S = 3600.0
RETRY_AFTER_FAILURE_S = 30.0


def make_jwt(key: ServiceAccountKey, now: float, lifetime_s: int = JWT_LIFETIME_S, audience: str = AUDIENCE) -> str:
    """The signed request for an IAM token (now = Unix time)."""
    claims = {"iss": key.service_account_id, "aud": audience, "iat": int(now), "exp": int(now) + lifetime_s}
    try:
        return jwt.encode(claims, key.private_key.get_secret_value(), algorithm="PS256", headers={"kid": key.id})
    except (ValueError, TypeError, jwt.PyJWTError) as exc:  # not a PEM RSA private key
        raise CredentialError(f"service-account key {key.id}: the private_key cannot sign ({type(exc).__name__})") \
            from None


def open_iam_channel(settings: IamSettings) -> grpc.Channel:
    options = [("grpc.primary_user_agent", f"voiced/{__version__}")]
    if not settings.uses_tls():
        return grpc.insecure_channel(settings.endpoint, options=options)
    roots = settings.ca_file.read_bytes() if settings.ca_file is not None else None
    return grpc.secure_channel(settings.endpoint, grpc.ssl_channel_credentials(root_certificates=roots),
                               options=options)


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
            raise CredentialError(f"IAM token exchange at {self.settings.endpoint} for key {self.key.id} "
                                  f"failed: {code} {error.details() or ''}".rstrip(),
                                  code="UNAVAILABLE" if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
                                  else "UNAUTHENTICATED") from None
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
