"""Behind the gateway, a node believes X-Forwarded-For/-Proto only from the addresses in
CHAT4ALL_FORWARDED_ALLOW_IPS (the gateway's): anyone else cannot choose the address it is seen at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chat4all import cli
from chat4all.config import Settings


class _Server:
    configs: list[Any] = []

    def __init__(self, config: Any) -> None:
        self.configs.append(config)
        self.started = True

    def run(self) -> None:
        pass


@pytest.mark.parametrize(("setting", "trusted"), [(None, "127.0.0.1"), ("10.0.0.5,10.0.1.0/24", "10.0.0.5,10.0.1.0/24")])
def test_serve_trusts_forwarded_headers_from_the_configured_addresses_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str | None, trusted: str
) -> None:
    monkeypatch.setenv("CHAT4ALL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CHAT4ALL_LOG_LEVEL", "WARNING")
    if setting is not None:
        monkeypatch.setenv("CHAT4ALL_FORWARDED_ALLOW_IPS", setting)
    monkeypatch.setattr(cli.uvicorn, "Server", _Server)
    _Server.configs.clear()
    result = CliRunner().invoke(cli.app, ["serve", "all"])
    assert result.exit_code == 0, result.output
    (config,) = _Server.configs
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == trusted
    assert Settings().forwarded_allow_ips == trusted
