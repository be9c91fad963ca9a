"""The `recognition:` section: where to send audio, as whom, and what to ask the recognizer for.

The defaults work with the embedded local server (no endpoint, en-US, raw 16 kHz PCM).
Pointing `endpoint` at `stt.api.cloud.yandex.net:443` talks to Yandex SpeechKit instead;
TLS is then switched on by the port unless `tls` says otherwise. Secrets are never written
here: the YAML says where to read them (a file, an environment variable, or a systemd
credential name), and `voiced.speechkit.auth` reads them when the client starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pydantic

from voiced.config.loader import FrozenModel
from voiced.protocol.vocabulary import MAX_AUDIO_S, MAX_BYTES, MAX_GAP_S, Encoding, SampleRate

TLS_PORT = 443
EMBEDDED = "embedded"  # fallback endpoint: the local server the daemon starts itself


def _tls_for(tls: bool | None, ca_file: Path | None, target: str) -> bool:
    if tls is not None:
        return tls
    if ca_file is not None:
        return True
    return target.rpartition(":")[2] == str(TLS_PORT)


class SecretSource(FrozenModel):
    """Where a secret is read from: exactly one of a file, an environment variable, or the
    name of a systemd credential (LoadCredential=/SetCredentialEncrypted=) in
    $CREDENTIALS_DIRECTORY. Never the secret itself: a config file is not a secret store."""

    file: Path | None = None
    env: str | None = pydantic.Field(None, min_length=1)
    credential: str | None = pydantic.Field(None, min_length=1, pattern=r"^[^/]+$")

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if sum(x is not None for x in (self.file, self.env, self.credential)) != 1:
            raise ValueError("give exactly one of file, env or credential")
        return self

    def describe(self) -> str:
        """Where it comes from, for messages (never the value)."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"env {self.env}"
        return f"systemd credential {self.credential}"


class RecognitionTimeouts(FrozenModel):
    # gRPC deadline of one streaming call: the service ends a session after 5 min of audio
    # anyway, so a call still open past this is hung (e.g. a silently dropped connection)
    session_s: float = pydantic.Field(330.0, gt=0)
    # how long a session start may wait for the connection (and TLS) before the endpoint
    # counts as unreachable; audio is buffered meanwhile
    connect_s: float = pydantic.Field(3.0, gt=0)


class SessionBudget(FrozenModel):
    """The service's per-session limits, as the client spends them: it half-closes an
    idle session before `max_gap_s`, and rolls to a new session (new config message) once
    `1 - roll_margin` of the audio or byte budget is used, at the next pause in the audio
    (or, with no pause, just before the limit)."""

    max_gap_s: float = pydantic.Field(MAX_GAP_S, gt=0.5)
    max_audio_s: float = pydantic.Field(MAX_AUDIO_S, gt=0)
    max_bytes: int = pydantic.Field(MAX_BYTES, gt=64 * 1024)
    roll_margin: float = pydantic.Field(0.1, ge=0.0, lt=0.9)
    pause_s: float = pydantic.Field(0.3, gt=0)  # a pause this long is an utterance boundary


class RetrySettings(FrozenModel):
    """Backoff of one session's retries (exponential with jitter, bounded). A session is live
    audio: its audio is kept and replayed into the new call, so keep the total short (the
    daemon gives up on a final 5 s after the end of speech)."""

    attempts: int = pydantic.Field(4, ge=1, le=20)  # calls per session, first one included
    initial_s: float = pydantic.Field(0.2, ge=0)
    max_s: float = pydantic.Field(2.0, gt=0)
    jitter_s: float = pydantic.Field(0.2, ge=0)
    # after credentials were refused twice in a row (refresh included), new sessions fail at
    # once for this long rather than hammer the service with a bad key
    auth_backoff_s: float = pydantic.Field(30.0, ge=0)
    # UNAVAILABLE calls on the primary before a session moves to the fallback endpoint
    fallback_after: int = pydantic.Field(2, ge=1)


class IamSettings(FrozenModel):
    """The IAM token exchange used with a service-account key."""

    endpoint: str = "iam.api.cloud.yandex.net:443"
    tls: bool | None = None
    ca_file: Path | None = None
    timeout_s: float = pydantic.Field(10.0, gt=0)

    def uses_tls(self) -> bool:
        return _tls_for(self.tls, self.ca_file, self.endpoint)


class FallbackSettings(FrozenModel):
    """A second endpoint for when the primary is unreachable, e.g. the embedded local server.

    Credentials are not sent to it unless `send_credentials` (it is usually a local server
    without auth, and a cloud key has no business leaving for another host)."""

    endpoint: str = pydantic.Field(EMBEDDED, min_length=1)  # host:port, or "embedded"
    tls: bool | None = None
    ca_file: Path | None = None
    language: str | None = None  # None = the primary's
    model: str | None = None
    send_credentials: bool = False
    # while on the fallback, how often the primary's connection is tried again
    probe_interval_s: float = pydantic.Field(5.0, gt=0)


def address_list_target(addresses: tuple[str, ...]) -> str:
    """gRPC's target for a static list of servers ("ipv4:A:P,B:P" / "ipv6:[A]:P,[B]:P"). The
    list resolvers take IP addresses only; a name with several servers is a dns:/// target."""
    families = set()
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host)
        except ValueError:
            raise ValueError(
                f"{address!r}: a list of endpoints takes IP:port entries; for servers by name use "
                "one 'dns:///name:port' endpoint whose DNS records list them"
            ) from None
        if not port.isdigit():
            raise ValueError(f"{address!r}: no port")
        families.add(ip.version)
    if len(families) > 1:
        raise ValueError("a list of endpoints must be all IPv4 or all IPv6 (gRPC resolves one family per list)")
    return f"ipv{families.pop()}:" + ",".join(addresses)


class RecognitionSettings(FrozenModel):
    # host:port of a SpeechKit v2 compatible server; None = the embedded local server. Several
    # servers (e.g. `voiced serve` instances), sessions spread over them by gRPC's own
    # round_robin balancing, a failed one skipped: a list of IP:port, or a "dns:///name:port"
    endpoint: str | tuple[str, ...] | None = pydantic.Field(None, min_length=1)
    # None = TLS exactly when the endpoint's port is 443 (the cloud's); true/false forces it
    tls: bool | None = None
    # PEM bundle of trusted CAs for TLS (e.g. a self-signed local server); None = system roots
    ca_file: Path | None = None
    language: str = "en-US"
    model: str = "general"
    partial_results: bool = True
    profanity_filter: bool = False
    raw_results: bool = False
    sample_rate: SampleRate = 16000
    encoding: Encoding = "LINEAR16_PCM"
    # at most one credential: `authorization: Api-Key`, `Bearer` an IAM token, or `Bearer`
    # an IAM token obtained with a service-account authorized key (JSON)
    api_key: SecretSource | None = None
    iam_token: SecretSource | None = None
    service_account_key: SecretSource | None = None
    # only for user accounts (an iam_token of a user); service accounts must leave it out
    folder_id: str | None = pydantic.Field(None, min_length=1, max_length=50)
    iam: IamSettings = IamSettings()
    fallback: FallbackSettings | None = None
    limits: SessionBudget = SessionBudget()
    retry: RetrySettings = RetrySettings()
    timeouts: RecognitionTimeouts = RecognitionTimeouts()

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> RecognitionSettings:
        if isinstance(self.endpoint, tuple):
            address_list_target(self.endpoint)  # raises on a name, a missing port, mixed families
        if self.ca_file is not None and self.tls is False:
            raise ValueError("ca_file is set but tls is false: a CA file is only used for TLS")
        given = [name for name in ("api_key", "iam_token", "service_account_key") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give at most one credential, not {' and '.join(given)}")
        if self.folder_id is not None and given and given[0] != "iam_token":
            raise ValueError(
                f"folder_id is for user accounts (iam_token); the service refuses it "
                f"from a service account ({given[0]})"
            )
        return self

    def target(self) -> str | None:
        """The gRPC target of `endpoint` (None: the embedded server)."""
        if isinstance(self.endpoint, tuple):
            return address_list_target(self.endpoint)
        return self.endpoint

    def uses_tls(self, target: str) -> bool:
        """Whether a channel to `target` must be TLS (a CA file implies it)."""
        return _tls_for(self.tls, self.ca_file, target)

    def for_fallback(self) -> RecognitionSettings:
        """The same request, aimed at the fallback endpoint (its TLS, language and model)."""
        fallback = self.fallback
        assert fallback is not None
        update = {
            "tls": fallback.tls,
            "ca_file": fallback.ca_file,
            "language": fallback.language or self.language,
            "model": fallback.model or self.model,
            "fallback": None,
        }
        if not fallback.send_credentials:
            update.update(api_key=None, iam_token=None, service_account_key=None, folder_id=None)
        return self.model_copy(update=update)
