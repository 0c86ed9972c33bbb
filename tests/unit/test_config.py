"""Settings: where the database and the master key come from."""

from __future__ import annotations

import base64
import logging
import stat
from pathlib import Path

import pytest

from securekey.config import KEY_FILE, Settings
from securekey.crypto import Cipher, MasterKey
from securekey.exceptions import ConfigurationError

PG_URL = "postgresql://postgres@127.0.0.1:5432/securekey"


def test_first_start_generates_a_0600_key_file_and_warns_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the embedded default and no key, a key file is created with mode 0600 and a WARNING."""
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    with caplog.at_level(logging.DEBUG, logger="securekey"):
        key = settings.master_key()
    path = data / KEY_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key.to_base64()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name.startswith("securekey")
    assert str(path) in warnings[0].getMessage()
    assert key.to_base64() not in caplog.text


def test_second_start_reuses_the_key_file_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The generated key is read back on the next start, with no new warning."""
    first = Settings(data_dir=tmp_path).master_key()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="securekey"):
        second = Settings(data_dir=tmp_path).master_key()
    assert second.to_base64() == first.to_base64()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_postgres_without_a_master_key_is_a_configuration_error(tmp_path: Path) -> None:
    """A shared database never gets a generated key: replicas must share one, so it is required."""
    settings = Settings.from_env(
        {"SECUREKEY_DATABASE_URL": PG_URL, "SECUREKEY_DATA_DIR": str(tmp_path)}
    )
    assert not settings.embedded
    with pytest.raises(ConfigurationError, match="SECUREKEY_MASTER_KEY"):
        settings.master_key()
    assert not (tmp_path / KEY_FILE).exists()


def test_master_key_variable_is_used_when_set(tmp_path: Path) -> None:
    """SECUREKEY_MASTER_KEY wins: that key is used and no key file is generated."""
    given = MasterKey.generate().to_base64()
    settings = Settings.from_env(
        {"SECUREKEY_MASTER_KEY": given, "SECUREKEY_DATA_DIR": str(tmp_path / "d")}
    )
    assert settings.master_key().to_base64() == given
    assert not (tmp_path / "d" / KEY_FILE).exists()
    pg = Settings.from_env({"SECUREKEY_MASTER_KEY": given, "SECUREKEY_DATABASE_URL": PG_URL})
    assert pg.master_key().to_base64() == given


def test_master_key_file_variable_is_read(tmp_path: Path) -> None:
    """SECUREKEY_MASTER_KEY_FILE names a key file that is read, also for PostgreSQL."""
    given = MasterKey.generate()
    path = tmp_path / "k"
    path.write_text(given.to_base64() + "\n")
    settings = Settings.from_env(
        {"SECUREKEY_MASTER_KEY_FILE": str(path), "SECUREKEY_DATABASE_URL": PG_URL}
    )
    assert settings.master_key().to_base64() == given.to_base64()


def test_bad_master_key_sources_are_configuration_errors(tmp_path: Path) -> None:
    """A malformed variable, a missing file or a non-text file stop start-up with a clear error."""
    with pytest.raises(ConfigurationError, match="base64"):
        Settings(master_key_b64="no!pe").master_key()
    with pytest.raises(ConfigurationError, match="Cannot read"):
        Settings(master_key_file=tmp_path / "missing").master_key()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe" * 20)
    with pytest.raises(ConfigurationError):
        Settings(master_key_file=binary).master_key()
    short = tmp_path / "short"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Settings(master_key_file=short).master_key()


def test_embedded_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    """With no URL the database is securekey.db under the data directory, which is created."""
    settings = Settings(data_dir=tmp_path / "new")
    url = settings.database()
    assert url == f"sqlite:///{(tmp_path / 'new' / 'securekey.db').resolve()}"
    assert (tmp_path / "new").is_dir()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "redis://localhost"])
def test_unsupported_database_urls_are_refused(url: str) -> None:
    """Only SQLite and PostgreSQL URLs are accepted; others fail before anything starts."""
    with pytest.raises(ConfigurationError):
        Settings(database_url=url).database()


def test_from_env_and_overrides() -> None:
    """Variables fill the settings and command-line options override them."""
    env = {"SECUREKEY_DATA_DIR": "/srv/sk", "SECUREKEY_DATABASE_URL": PG_URL}
    settings = Settings.from_env(env)
    assert settings.data_dir == Path("/srv/sk")
    assert settings.database_url == PG_URL
    over = settings.with_overrides(data_dir=Path("/x"), database_url="sqlite:////y.db")
    assert (over.data_dir, over.database_url) == (Path("/x"), "sqlite:////y.db")
    assert Settings.from_env({}).embedded


def test_settings_repr_hides_the_master_key() -> None:
    """repr()/str() of Settings never show the base64 master key."""
    given = MasterKey.generate().to_base64()
    settings = Settings(master_key_b64=given)
    assert given not in repr(settings)
    assert given not in str(settings)
    assert repr(Cipher(settings.master_key())) == "Cipher(<redacted>)"


def test_find_master_key_never_creates_a_key_file(tmp_path: Path) -> None:
    """``find_master_key`` reports a missing embedded key file as None and writes nothing."""
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.find_master_key() is None
    assert not (tmp_path / "data" / KEY_FILE).exists()
    made = settings.master_key()
    found = settings.find_master_key()
    assert found is not None
    assert found.key_id == made.key_id


def test_old_master_keys_come_from_the_variable_and_the_file(tmp_path: Path) -> None:
    """SECUREKEY_OLD_MASTER_KEY and SECUREKEY_OLD_MASTER_KEY_FILE both name decrypt-only keys."""
    one, two = MasterKey.generate(), MasterKey.generate()
    (tmp_path / "old.key").write_text(two.to_base64())
    settings = Settings.from_env(
        {
            "SECUREKEY_OLD_MASTER_KEY": one.to_base64(),
            "SECUREKEY_OLD_MASTER_KEY_FILE": str(tmp_path / "old.key"),
        }
    )
    assert [k.key_id for k in settings.old_master_keys()] == [one.key_id, two.key_id]
    assert one.to_base64() not in repr(settings)
    with pytest.raises(ConfigurationError):
        Settings(old_master_key_b64="nope").old_master_keys()


def test_data_directory_and_database_file_are_created_private(tmp_path: Path) -> None:
    """The embedded default creates its directory 0700 and the database file 0600."""
    settings = Settings(data_dir=tmp_path / "new" / "data")
    settings.database()
    assert stat.S_IMODE((tmp_path / "new" / "data").stat().st_mode) == 0o700
    db = tmp_path / "new" / "data" / "securekey.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
