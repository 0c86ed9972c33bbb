"""``securekey server --tls-cert --tls-key`` serves HTTPS; the CLI, the SDK and the Heroku CLI
verify it against a private CA given to them, and refuse it without (issue 11, point 9).

A throwaway CA and a server certificate for 127.0.0.1 and localhost are made with
``cryptography`` per module; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securekey.client import KeyRing, WatchedKeyRing
from securekey.client._errors import ServerUnavailableError
from tests.e2e.test_heroku_cli import Heroku, _cli, has_line
from tests.servers import Server, running_server
from tests.support import new_addon, new_app, new_app_token, rotate, wait_until


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate it signed, that certificate's key, another CA."""

    ca: Path
    cert: Path
    key: Path
    other_ca: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pki(where: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and an unrelated CA."""
    ca_key, ca_cert = _ca("securekey test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    where.mkdir(parents=True, exist_ok=True)
    pki = Pki(where / "ca.pem", where / "server.pem", where / "server.key", where / "other.pem")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The module's throwaway CA and server certificate."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Server]:
    """A real server serving HTTPS only, with the module's certificate."""
    data = tmp_path_factory.mktemp("tls") / "data"
    with running_server(data, tls=(pki.cert, pki.key, pki.ca)) as running:
        yield running


def securekey(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m securekey ARGS`` with exactly ``env`` (plus PATH), bounded in time."""
    full = {"PATH": os.environ.get("PATH", ""), "HOME": env.get("HOME", "/nonexistent"), **env}
    return subprocess.run(
        [sys.executable, "-m", "securekey", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_env(server: Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: the server and operator token, a private HOME."""
    return {
        "HOME": str(tmp_path),
        "SECUREKEY_URL": server.url,
        "SECUREKEY_TOKEN": server.token,
        "NO_COLOR": "1",
        **extra,
    }


def test_issue11_point9_the_cli_works_over_tls_with_a_ca_bundle(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    """With SECUREKEY_CA_BUNDLE the CLI creates and lists apps over HTTPS, by IP and by name."""
    env = cli_env(server, tmp_path, SECUREKEY_CA_BUNDLE=str(pki.ca))
    made = securekey("apps:create", "tls-app", env=env)
    assert made.returncode == 0, made.stderr
    listed = securekey("apps", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "tls-app" in listed.stdout
    by_name = {**env, "SECUREKEY_URL": server.url.replace("127.0.0.1", "localhost")}
    assert "tls-app" in securekey("apps", env=by_name).stdout


def test_issue11_point9_the_cli_refuses_an_untrusted_certificate(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    """Without the CA (or with another CA) the CLI refuses, in one line saying what to set."""
    for extra in ({}, {"SECUREKEY_CA_BUNDLE": str(pki.other_ca)}):
        refused = securekey("apps", env=cli_env(server, tmp_path, **extra))
        assert refused.returncode == 1, refused
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert "does not trust" in lines[0]
        assert "SECUREKEY_CA_BUNDLE" in lines[0]
        assert "bug" not in lines[0]
    missing = securekey(
        "apps", env=cli_env(server, tmp_path, SECUREKEY_CA_BUNDLE=str(tmp_path / "nope.pem"))
    )
    assert missing.returncode == 1
    assert "is not a readable PEM file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_issue11_point9_the_sdk_verifies_the_server_with_a_ca_bundle(
    server: Server, pki: Pki
) -> None:
    """KeyRing.from_server and WatchedKeyRing trust the CA given; a live rotation arrives
    over the TLS stream; without the CA the SDK refuses the server."""
    with server.client() as http:
        addon = new_addon(http, new_app(http, "tls-sdk"))
        token = new_app_token(http, "tls-sdk", "tls")
        first = http.get("/apps/tls-sdk/config-vars").json()["SECURE_KEY"]

        with KeyRing.from_server(server.url, "tls-sdk", token, ca_bundle=pki.ca) as ring:
            assert ring.present() == first.split(",")[0]
        with WatchedKeyRing.connect(server.url, "tls-sdk", token, ca_bundle=pki.ca) as watched:
            assert watched.present() == first.split(",")[0]
            wait_until(lambda: watched.watcher.streaming, 15, "the TLS stream to open")
            rotate(http, addon)
            new = http.get("/apps/tls-sdk/config-vars").json()["SECURE_KEY"].split(",")[0]
            wait_until(lambda: watched.present() == new, 15, "the rotation to arrive over TLS")

    with pytest.raises(ServerUnavailableError, match="not trusted"):
        KeyRing.from_server(server.url, "tls-sdk", token, ca_bundle=pki.other_ca)


def test_issue11_point9_bad_tls_options_stop_the_server_with_one_line(
    pki: Pki, tmp_path: Path
) -> None:
    """A certificate without its key, or a key that is not the certificate's, is one clear line."""
    cases = [
        (["--tls-cert", str(pki.cert)], "needs both --tls-cert"),
        (["--tls-cert", str(pki.cert), "--tls-key", str(pki.ca)], "Cannot use --tls-cert"),
        (["--tls-cert", str(tmp_path / "no.pem"), "--tls-key", str(pki.key)], "not found"),
    ]
    for args, words in cases:
        done = securekey(
            "server", "--data-dir", str(tmp_path / "data"), "--port", "1", *args, env={}
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert words in lines[0]
    assert not (tmp_path / "data").exists(), "nothing starts before the TLS files are checked"


@pytest.mark.slow
def test_issue11_point9_the_heroku_cli_works_over_tls(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    """The real Heroku CLI lists apps over HTTPS when Node trusts the CA, and refuses without."""
    cli = _cli()
    heroku = Heroku(cli, server, tmp_path / "home")
    assert heroku.env["HEROKU_HOST"].startswith("https://127.0.0.1:")
    heroku.env["NODE_EXTRA_CA_CERTS"] = str(pki.ca)
    with server.client() as http:
        http.post("/apps", json={"name": "tls-heroku"})
    has_line(heroku("apps"), r"tls-heroku \(local\)")

    untrusting = dict(heroku.env)
    del untrusting["NODE_EXTRA_CA_CERTS"]
    refused = subprocess.run(
        [str(cli), "apps"],
        cwd=heroku.cwd,
        env=untrusting,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert refused.returncode != 0
    assert "certificate" in (refused.stdout + refused.stderr).lower()
