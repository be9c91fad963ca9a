"""Credentials for the recognizer: read from where the YAML says, turned into gRPC metadata.

A secret is held only as a pydantic SecretStr and shows up in logs and messages as a short
SHA-256 fingerprint (`sha256:1a2b3c4d5e6f`), which tells two keys apart without revealing
either. Every failure (missing file, unset variable, refused key) is a CredentialError whose
message names the source and the fingerprint, never the value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol

import pydantic

from voiced.speechkit.settings import RecognitionSettings, SecretSource
from voiced.yamlconfig import ConfigError, read_text

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


def read_secret(source: SecretSource, environ: dict[str, str] | None = None) -> pydantic.SecretStr:
    """The secret's text, surrounding whitespace stripped (files usually end with a newline)."""
    environ = os.environ if environ is None else environ
    if source.env is not None:
        if not environ.get(source.env, "").strip():
            raise CredentialError(f"cannot read the credential from {source.describe()}: it is not set")
        return pydantic.SecretStr(environ[source.env].strip())
    if source.credential is not None:
        directory = environ.get(CREDENTIALS_DIRECTORY)
        if not directory:
            raise CredentialError(f"cannot read the {source.describe()}: ${CREDENTIALS_DIRECTORY} is not set "
                                  "(add LoadCredential= to the unit)")
        path = Path(directory) / source.credential
    else:
        path = source.file
    try:
        text = read_text(path, "credential").strip()  # a regular file, bounded (not a FIFO, not /dev/zero)
    except ConfigError as exc:
        # the problem names the path and the reason, never the content
        raise CredentialError(f"cannot read the credential from {source.describe()}: "
                              f"{exc.problems[0].message}") from None
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
            problems = ", ".join(".".join(map(str, e["loc"])) or e["type"] for e in exc.errors()) \
                if isinstance(exc, pydantic.ValidationError) else "not JSON"
            raise CredentialError(f"the service-account key in {where} is not an authorized key "
                                  f"(id, service_account_id, private_key): {problems}") from None


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
    """IAM tokens made from a service-account key (voiced.speechkit.iam)."""

    def __init__(self, source: SecretSource, settings: RecognitionSettings):
        from voiced.speechkit.iam import IamTokenSource

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
