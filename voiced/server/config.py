"""The `server:` section: models, limits, auth and TLS of the local recognition server.

Defaults give what a fresh install needs: en-US on the model inside the pocketsphinx wheel,
the service's documented session limits, no auth, plain gRPC on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import pydantic

from voiced.audio.vad import EndpointerSettings
from voiced.commands.config import WhisperSettings
from voiced.config.loader import ConfigError, ConfigProblem, FrozenModel
from voiced.protocol.vocabulary import MAX_AUDIO_S, MAX_BYTES, MAX_GAP_S


class LanguageModel(FrozenModel):
    """A pocketsphinx model directory (acoustic model) with its dictionary and LM.

    Every path None = the en-us model shipped inside the pocketsphinx wheel."""

    acoustic_model: Path | None = None
    dictionary: Path | None = None
    language_model: Path | None = None
    # phone LM for the rejection step of grammar models (None = the wheel's en-us phone LM)
    phone_language_model: Path | None = None


class GrammarModel(FrozenModel):
    """A named grammar selectable through the spec's `model` field (e.g. the commands).

    `engine: pocketsphinx` decodes with the grammar itself. `engine: whisper` needs the
    commands (command files): partials come from the grammar, the final from Whisper choosing
    among the commands' sentences."""

    language: str = "en-US"
    jsgf: str | None = None  # inline JSGF text
    jsgf_file: Path | None = None
    commands_files: tuple[Path, ...] = ()  # command files or directories: their grammar and sentences
    engine: Literal["pocketsphinx", "whisper"] = "pocketsphinx"
    # pocketsphinx: speech that fits the grammar poorly (scored against a free phone loop on the
    # same audio) gives an empty final instead of being forced onto the nearest sentence. Per
    # frame of speech, the grammar path may lose at most this fraction of the phone loop's own
    # per-frame score (0.75 suits command grammars, see bench/bench_commands.py); None = off.
    rejection_margin: float | None = pydantic.Field(None, ge=0)
    whisper: WhisperSettings = WhisperSettings()

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> GrammarModel:
        if sum((self.jsgf is not None, self.jsgf_file is not None, bool(self.commands_files))) != 1:
            raise ValueError("give exactly one of jsgf (inline text), jsgf_file or commands_files")
        return self


class ServerLimits(FrozenModel):
    """What the service documents, and the server's own bounds; past any of them the call
    ends with a status."""

    max_gap_s: float = pydantic.Field(MAX_GAP_S, gt=0)  # between two messages -> DEADLINE_EXCEEDED
    max_audio_s: float = pydantic.Field(MAX_AUDIO_S, gt=0)  # audio per session -> RESOURCE_EXHAUSTED
    max_bytes: int = pydantic.Field(MAX_BYTES, gt=0)  # data per session -> RESOURCE_EXHAUSTED
    max_message_bytes: int = pydantic.Field(4 * 1024 * 1024, gt=0)  # one request (gRPC's receive cap)
    max_streams: int = pydantic.Field(8, ge=1)  # concurrent calls; more -> RESOURCE_EXHAUSTED


def _usable_secret(secret: pydantic.SecretStr) -> pydantic.SecretStr:
    value = secret.get_secret_value()
    if not value.strip():
        raise ValueError("an empty key would accept an empty credential: give a key or remove the entry")
    if any(character.isspace() for character in value):
        raise ValueError("a key cannot contain whitespace (no client could send it)")
    return secret


Secret = Annotated[pydantic.SecretStr, pydantic.AfterValidator(_usable_secret)]


class AuthSettings(FrozenModel):
    """Accepted credentials. All four empty = no authentication (the loopback default).

    Secrets are read from files (e.g. systemd's $CREDENTIALS_DIRECTORY), one per line. Auth
    that is configured never switches itself off: an empty key, or a named file that holds
    no key, is a configuration error (the server refuses to start), not "no auth"."""

    api_keys: tuple[Secret, ...] = ()
    api_key_files: tuple[Path, ...] = ()
    bearer_tokens: tuple[Secret, ...] = ()
    bearer_token_files: tuple[Path, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.api_keys or self.api_key_files or self.bearer_tokens or self.bearer_token_files)

    @staticmethod
    def _read(inline: tuple[pydantic.SecretStr, ...], files: tuple[Path, ...], what: str) -> tuple[str, ...]:
        values = [secret.get_secret_value() for secret in inline]
        problems = []
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                problems.append(ConfigProblem(str(path), 1, 1, f"server.auth: cannot read this {what} file: {reason}"))
                continue
            keys = [line.strip() for line in lines if line.strip()]
            if not keys:
                problems.append(
                    ConfigProblem(
                        str(path),
                        1,
                        1,
                        f"server.auth: this {what} file holds no key "
                        "(it is empty or only whitespace); auth is configured, so the "
                        "server refuses to start rather than let every client in",
                    )
                )
            values += keys
        if problems:
            raise ConfigError(problems)
        return tuple(values)

    def accepted(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(api keys, bearer tokens), files read now; both empty only when auth is not configured.

        Raises ConfigError (located at the key file) when a named file is unreadable or holds
        no key: configured auth must never end up accepting everyone."""
        api_keys = self._read(self.api_keys, self.api_key_files, "api key")
        bearer_tokens = self._read(self.bearer_tokens, self.bearer_token_files, "bearer token")
        return api_keys, bearer_tokens


class TlsSettings(FrozenModel):
    cert_file: Path
    key_file: Path


def tcp_address(uri: str) -> tuple[str, int]:
    """(host, port) of a tcp://HOST:PORT URI (port 0: any free one); ValueError says what is wrong."""
    parts = urlsplit(uri)
    if parts.scheme != "tcp":
        raise ValueError(f"{uri!r} is not a tcp://HOST:PORT URI (e.g. tcp://0.0.0.0:10300)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{uri!r}: the port must be a number from 0 to 65535") from None
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{uri!r} is not a tcp://HOST:PORT URI (e.g. tcp://0.0.0.0:10300)")
    return parts.hostname, port


class WyomingSettings(FrozenModel):
    """The Wyoming ASR listener (Home Assistant's voice protocol) of `voiced serve`, beside the
    SpeechKit v2 API, on the same models. Off unless a URI is given."""

    uri: str | None = None  # tcp://HOST:PORT, e.g. tcp://0.0.0.0:10300 (`voiced serve --wyoming URI`)
    # The Wyoming protocol has no authentication (nor TLS): beside a configured server.auth it
    # would let every client in through a side door, so that takes saying so here
    allow_without_auth: bool = False

    @pydantic.field_validator("uri")
    @classmethod
    def _tcp(cls, uri: str | None) -> str | None:
        if uri is not None:
            tcp_address(uri)
        return uri

    @property
    def address(self) -> tuple[str, int] | None:
        return tcp_address(self.uri) if self.uri is not None else None


class ServerSettings(FrozenModel):
    # language code -> model; add e.g. ru-RU with the paths of a downloaded pocketsphinx model
    languages: dict[str, LanguageModel] = {"en-US": LanguageModel()}
    models: dict[str, GrammarModel] = {}
    limits: ServerLimits = ServerLimits()
    auth: AuthSettings = AuthSettings()
    tls: TlsSettings | None = None
    wyoming: WyomingSettings = WyomingSettings()  # after auth: its check reads auth
    # utterance segmentation inside a stream: a pause this long ends an utterance
    endpointing: EndpointerSettings = EndpointerSettings(min_utterance_s=0.0, max_utterance_s=60.0)
    partial_interval_s: float = pydantic.Field(0.3, gt=0)  # audio between two partial hypotheses
    profanity_words: tuple[str, ...] = (
        "damn",
        "hell",
        "shit",
        "fuck",
        "fucking",
        "bitch",
        "bastard",
        "crap",
        "блин",
        "черт",
        "хрен",
    )
    # decoders kept loaded per model (each open-LM decoder holds ~45 MB beside the shared LM)
    idle_decoders: int = pydantic.Field(2, ge=0)
    # pocketsphinx adapts to the channel (cepstral mean) as it hears audio. A server for many
    # clients resets that per session (results must not depend on who called before); the
    # daemon's embedded server has one client, its own microphone, and keeps the adaptation
    keep_channel_adaptation: bool = False
    # Decoders (with the model data they share) may hold at most this much memory; a session
    # that would need more is refused (RESOURCE_EXHAUSTED) rather than the machine swapping.
    # None = 75 % of the memory available (MemAvailable) when the server starts. With workers,
    # each decoder process gets an equal share
    memory_budget_mb: float | None = pydantic.Field(None, gt=0)
    # decoder processes (`voiced serve --workers N`): pocketsphinx decodes on one core per
    # process, so sessions are spread over N; max_streams and idle_decoders apply to each
    workers: int = pydantic.Field(1, ge=1, le=64)
    # models loaded at start (None = all); the others load at their first call. The daemon's
    # embedded server preloads only the model it asks for (the open LM alone is ~90 MB)
    preload: tuple[str, ...] | None = None

    @pydantic.field_validator("wyoming")
    @classmethod
    def _wyoming_behind_auth(cls, wyoming: WyomingSettings, info: pydantic.ValidationInfo) -> WyomingSettings:
        auth = info.data.get("auth")
        if wyoming.uri is not None and auth is not None and auth.configured and not wyoming.allow_without_auth:
            raise ValueError(
                "the Wyoming protocol has no authentication: with server.auth configured, the "
                "Wyoming listener would let every client in. Serve it only where every client may "
                "use it (e.g. on loopback for a Home Assistant on this host) and set "
                "wyoming.allow_without_auth: true, or remove wyoming.uri"
            )
        return wyoming

    def with_wyoming(self, uri: str) -> ServerSettings:
        """These settings with the Wyoming listener on `uri` (`voiced serve --wyoming`), checked
        as the config file's key is: pydantic.ValidationError otherwise."""
        wyoming = WyomingSettings(uri=uri, allow_without_auth=self.wyoming.allow_without_auth)
        return ServerSettings.model_validate({**dict(self), "wyoming": wyoming})
