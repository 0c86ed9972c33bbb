"""No key material or secret value leaves memory in the clear.

Not in the SQLite file or its WAL, not in a ``pg_dump``, not in log records, not in the
``repr``/``str`` of domain objects, and not in the messages of errors about bad values.
"""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from securekey.config import Settings
from securekey.crypto import Cipher, MasterKey
from securekey.domain.clock import FixedClock
from securekey.domain.keys import Key, KeyPair, generate_key, parse_pair
from securekey.exceptions import SecureKeyError, ValidationError
from securekey.scheduler import Scheduler
from securekey.services import SecureKeyService
from securekey.services.webhooks import WebhookService
from securekey.store import SqlStore
from tests import pg

# Plain config values are secrets too: this one must be as invisible as the keys.
SECRET = "hunter2-TOPSECRET-7f3a9c5e1d"
HOOK_SECRET = "whsec-recognisable-0b5e2c9a41"


def _needles(text: str) -> list[bytes]:
    """Every encoding in which ``text`` could sit in a file or a dump."""
    raw = text.encode()
    out = [raw, raw.hex().encode(), base64.b64encode(raw)]
    if len(text) == 64:  # a key: also its lower case and its 32 raw bytes
        key_bytes = bytes.fromhex(text)
        out += [text.lower().encode(), key_bytes, base64.b64encode(key_bytes)]
        out += [text.lower().encode().hex().encode()]
    return out


def _found(blob: bytes, secrets_: set[str]) -> list[str]:
    """Which of ``secrets_`` occur in ``blob`` under any encoding (case-insensitively for hex)."""
    lower = blob.lower()
    return sorted(
        s
        for s in secrets_
        for n in _needles(s)
        if n in blob or (n.isascii() and n.lower() in lower)
    )


class Issued:
    """Collects every key ever handed out by reading the config vars after each step."""

    def __init__(self, service: SecureKeyService) -> None:
        self.service = service
        self.keys: set[str] = set()
        self.fingerprints: set[str] = set()

    def collect(self) -> None:
        for app in self.service.list_apps():
            for name, value in self.service.config_vars(app.name).items():
                if name.endswith("_KEY"):
                    pair = parse_pair(value)
                    self.keys |= {pair.latest.hex, pair.previous.hex}
                    self.fingerprints |= set(pair.fingerprints)


def exercise(service: SecureKeyService, clock: FixedClock) -> Issued:
    """Create, attach, set secrets, rotate normally, by schedule and in emergency, destroy."""
    issued = Issued(service)
    service.create_app("service-1")
    service.create_app("service-2")
    WebhookService(service.store, clock, allow_private=True).create(
        "service-2", "http://127.0.0.1:9/hook", ["api:release"], secret=HOOK_SECRET
    )
    one = service.create_addon("service-1", "securekey:fortnightly").addon.name
    service.attach(one, "service-2", as_="SERVICE_ONE_SECURE")
    two = service.create_addon("service-2", "daily", attachment_name="OTHER", period="10s")
    issued.collect()
    service.set_config("service-1", {"PLAIN_SECRET": SECRET, "PLAIN_OTHER": "x"})
    service.set_config("service-1", {"PLAIN_OTHER": SECRET + "-v2"})
    for _ in range(3):
        service.rotate(one)
        issued.collect()
    service.rotate(one, emergency=True)
    issued.collect()
    clock.advance(timedelta(seconds=10))
    assert len(Scheduler(service, clock).tick().rotated) == 1
    issued.collect()
    service.rotate(two.addon.name, emergency=True)
    issued.collect()
    service.destroy_addon(two.addon.name)
    return issued


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every securekey logger at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="securekey")
    return caplog


def test_database_files_and_dumps_hold_no_key_or_secret(
    db_url: str,
    cipher: Cipher,
    clock: FixedClock,
    logged: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """After creations and rotations no issued key or plain secret is in stored bytes or logs."""
    store = SqlStore.open(db_url, cipher)
    service = SecureKeyService(store, cipher, clock)
    issued = exercise(service, clock)
    assert len(issued.keys) >= 12  # 2 add-ons: creation, 3 + 1 + 1 rotations, 2 emergencies
    secrets_ = issued.keys | {SECRET, HOOK_SECRET}

    if store.dialect == "sqlite":
        path = Path(db_url.removeprefix("sqlite:///"))
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()  # still open: recent pages live in the WAL
        blobs = {"db (open)": path.read_bytes(), "wal": wal.read_bytes()}
        store.close()
        blobs["db (closed)"] = path.read_bytes()
    else:
        server: pg.PgServer = request.getfixturevalue("pg_server")
        store.close()
        dump = server.run(
            str(server.bindir / "pg_dump"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "postgres",
            db_url.rsplit("/", 1)[1],
        ).stdout
        assert "COPY public.key_versions" in dump
        blobs = {"pg_dump": dump.encode()}

    for where, blob in blobs.items():
        assert _found(blob, secrets_) == [], f"secret material in {where}"
    # The scan sees the real data: fingerprints and names are stored in the clear, on purpose.
    everything = b"".join(blobs.values())
    assert any(fp.encode() in everything for fp in issued.fingerprints)
    assert b"service-1" in everything

    records = [r for r in logged.records if r.name.startswith("securekey")]
    assert records, "the operations log something"
    text = logged.text + "\n".join(f"{r.getMessage()} {r.args!r}" for r in records)
    assert _found(text.encode(), secrets_) == []
    assert any(fp in text for fp in issued.fingerprints)  # logs name keys by fingerprint


def test_reprs_of_domain_objects_show_no_material(
    service: SecureKeyService, cipher: Cipher, clock: FixedClock
) -> None:
    """repr() and str() of keys, pairs, entities, events, results and settings hold no secret."""
    service.create_app("service-1")
    created = service.create_addon("service-1", "securekey:daily")
    name = created.addon.name
    service.set_config("service-1", {"PLAIN_SECRET": SECRET})
    pair = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    rotated = service.rotate(name)
    new = parse_pair(service.config_vars("service-1")["SECURE_KEY"])
    master = MasterKey.generate()
    settings = Settings(master_key_b64=master.to_base64())
    objects: list[object] = [
        pair,
        pair.latest,
        new,
        created,
        created.addon,
        created.attachment,
        created.release,
        rotated,
        service.get_addon(name),
        *service.releases("service-1"),
        *service.audit_events(),
        *service.key_versions(name),
        service.list_apps(),
        cipher,
        master,
        Cipher(master),
        settings,
    ]
    secrets_ = {pair.latest.hex, pair.previous.hex, new.latest.hex, SECRET, master.to_base64()}
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert _found(text.encode(), secrets_) == [], type(obj).__name__
    assert pair.latest.fingerprint in repr(pair)


def _windows(text: str, size: int = 8) -> set[str]:
    return {text[i : i + size].lower() for i in range(len(text) - size + 1)}


def _assert_silent(error: BaseException, *inputs: str) -> None:
    """Neither the message, str, repr nor args of ``error`` repeat 8+ characters of the inputs."""
    shown = " ".join([str(error), repr(error), repr(error.args)]).lower()
    if isinstance(error, SecureKeyError):
        shown += " " + error.message.lower()
    for value in inputs:
        leaked = sorted(w for w in _windows(value) if w in shown)
        assert not leaked, f"{type(error).__name__} echoes its input: {leaked[:3]}"


def test_parse_pair_errors_never_echo_the_value() -> None:
    """Every malformed pair value is refused with a message that repeats none of it."""
    a, b, c = (generate_key().hex for _ in range(3))
    bad_values = [
        a,
        f"{a},{b},{c}",
        f"{a},{b[:-1]}",
        f"{a}0,{b}",
        f"{a};{b}",
        f"{a} {b}",
        f"{a},{b}\x00",
        f"{a.lower()},{b.lower()}Z",
        f"{a},",
        f",{b}",
        f"{a},{b},",
    ]
    for value in bad_values:
        with pytest.raises(ValidationError) as info:
            parse_pair(value)
        _assert_silent(info.value, a, b, c)
    for other in (f"{a},{b}".encode(), [a, b], None):
        with pytest.raises(ValidationError) as info:
            parse_pair(other)
        _assert_silent(info.value, a, b)


def test_bad_keys_and_bad_values_are_refused_without_echo(service: SecureKeyService) -> None:
    """Key() and set_config refuse bad material or values without repeating them."""
    a = generate_key().hex
    for bad in (a.lower(), a[:-1], a + "0", a[:-1] + "G"):
        with pytest.raises(ValidationError) as info:
            Key(bad)
        _assert_silent(info.value, a)
    with pytest.raises(ValidationError) as rot:
        KeyPair(Key(a), generate_key()).rotated(Key(a))
    _assert_silent(rot.value, a)

    service.create_app("service-1")
    for value in (SECRET + "\x00", SECRET * 2000, {"nested": SECRET}, [SECRET]):
        with pytest.raises(ValidationError) as info:
            service.set_config("service-1", {"PLAIN_SECRET": value})
        _assert_silent(info.value, SECRET)
    assert service.config_vars("service-1") == {}
