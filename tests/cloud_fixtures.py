"""What the cloud client's tests stand up on loopback: a self-signed TLS certificate, an RSA
service-account key, and an IAM token endpoint that verifies the JWT like the real one."""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import threading
from concurrent import futures
from pathlib import Path

import grpc
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.protobuf.timestamp_pb2 import Timestamp

from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2 as iam
from voiced.proto.yandex.cloud.iam.v1 import iam_token_service_pb2_grpc as iam_grpc

AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(cert, key) PEM files for localhost and 127.0.0.1; the cert is its own CA."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "server.pem", directory / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class ServiceAccountKeyPair:
    """An authorized key as `yc iam key create` writes it, with the public half kept for IAM."""

    def __init__(self, key_id: str = "ajekey0test", service_account_id: str = "ajesa0test"):
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.id = key_id
        self.service_account_id = service_account_id
        self.private_pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "service_account_id": self.service_account_id,
                "created_at": "2025-01-01T00:00:00Z",
                "key_algorithm": "RSA_2048",
                "public_key": "-----BEGIN PUBLIC KEY-----\n...",
                "private_key": self.private_pem,
            }
        )


class FakeIam(iam_grpc.IamTokenServiceServicer):
    """Issues `tokens` in turn to JWTs signed by `key` (checked with its public half)."""

    def __init__(self, key: ServiceAccountKeyPair, tokens: list[str], lifetime_s: float):
        self.key = key
        self.tokens = tokens
        self.lifetime_s = lifetime_s
        self.issued: list[str] = []
        self.refused = 0
        self.lock = threading.Lock()

    def Create(self, request, context):
        try:
            header = jwt.get_unverified_header(request.jwt)
            claims = jwt.decode(
                request.jwt,
                self.key.private.public_key(),
                algorithms=["PS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
            assert header.get("kid") == self.key.id, "kid"
            assert claims["iss"] == self.key.service_account_id, "iss"
            assert claims["exp"] - claims["iat"] <= 3600, "lifetime"
        except (jwt.PyJWTError, AssertionError) as exc:
            with self.lock:
                self.refused += 1
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"invalid JWT: {exc}")
        with self.lock:
            token = self.tokens[min(len(self.issued), len(self.tokens) - 1)]
            self.issued.append(token)
        expires = Timestamp()
        expires.FromNanoseconds(int((datetime.datetime.now().timestamp() + self.lifetime_s) * 1e9))
        return iam.CreateIamTokenResponse(iam_token=token, expires_at=expires)


def start_iam(servicer: FakeIam) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    iam_grpc.add_IamTokenServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def iam_tokens(count: int) -> list[str]:
    return [f"t1.iam-{i}-{secrets.token_hex(12)}" for i in range(count)]
