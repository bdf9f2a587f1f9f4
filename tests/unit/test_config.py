"""Settings: defaults, CHAT4ALL_* environment variables, a TOML file, and the generated JWT secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from chat4all.config import Settings


def test_defaults_are_the_embedded_profile(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)

    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'chat4all.db'}"
    assert settings.is_sqlite and settings.should_migrate_on_start
    assert (settings.event_log_url, settings.metadata_url, settings.presence_url) == ("db", "db", "memory://")
    assert settings.resolved_public_base_url == "http://127.0.0.1:8080"


def test_environment_variables_are_honoured(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CHAT4ALL_PORT", "9999")
    clean_env.setenv("CHAT4ALL_DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/chat4all")
    clean_env.setenv("CHAT4ALL_BCRYPT_ROUNDS", "5")
    clean_env.setenv("CHAT4ALL_LOG_JSON", "false")
    clean_env.setenv("CHAT4ALL_PUBLIC_BASE_URL", "https://chat.example.com/")

    settings = Settings()

    assert settings.port == 9999
    assert settings.resolved_database_url == "postgresql+asyncpg://u:p@db:5432/chat4all"
    assert not settings.is_sqlite and not settings.should_migrate_on_start
    assert settings.bcrypt_rounds == 5
    assert settings.log_json is False
    assert settings.resolved_public_base_url == "https://chat.example.com"


def test_an_invalid_environment_value_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CHAT4ALL_PORT", "70000")

    with pytest.raises(ValidationError):
        Settings()


def test_a_toml_file_is_read_and_the_environment_wins_over_it(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "chat4all.toml"
    config.write_text('port = 7000\nlog_level = "debug"\nbcrypt_rounds = 6\nnode_id = "from-file"\n')
    clean_env.setenv("CHAT4ALL_CONFIG_FILE", str(config))
    clean_env.setenv("CHAT4ALL_PORT", "9999")

    settings = Settings()

    assert settings.port == 9999  # the environment over the file
    assert settings.log_level == "DEBUG"  # from the file (and normalised)
    assert settings.bcrypt_rounds == 6
    assert settings.node_id == "from-file"


def test_constructor_arguments_win_over_environment_and_file(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "chat4all.toml"
    config.write_text("port = 7000\n")
    clean_env.setenv("CHAT4ALL_CONFIG_FILE", str(config))
    clean_env.setenv("CHAT4ALL_PORT", "9999")

    assert Settings(port=1234).port == 1234


def test_without_a_config_file_the_defaults_apply(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().port == 8080


def test_the_jwt_secret_is_generated_once_and_reused_from_the_data_dir(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"  # does not exist yet

    first = Settings(data_dir=data_dir).resolved_jwt_secret()
    again = Settings(data_dir=data_dir).resolved_jwt_secret()  # another process, later

    assert first == again
    assert len(first) >= 32
    secret_file = data_dir / "jwt-secret"
    assert secret_file.read_text().strip() == first
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path / "elsewhere").resolved_jwt_secret() != first


def test_a_configured_jwt_secret_is_used_and_nothing_is_written(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("CHAT4ALL_JWT_SECRET", "s3cret-from-the-environment-0123456789")

    assert Settings(data_dir=tmp_path).resolved_jwt_secret() == "s3cret-from-the-environment-0123456789"
    assert not (tmp_path / "jwt-secret").exists()
