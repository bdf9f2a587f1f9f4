"""deploy/alertmanager: a valid configuration that routes every severity the alert rules use
to the intended receiver (R13.5)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with Debian's prometheus-alertmanager (scripts/services.sh installs it)"
    return subprocess.run([amtool, *args], check=False, capture_output=True, text=True, timeout=60)


def test_the_configuration_is_valid() -> None:
    checked = _amtool("check-config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_severity_the_rules_use_is_routed() -> None:
    used = set(re.findall(r"severity: (\w+)", (DEPLOY / "prometheus" / "alerts.yml").read_text()))
    assert used == {"page", "warn"}


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=Chat4AllConsumerLag", "worker=router"], "on-call"),
        (["severity=warn", "alertname=Chat4AllConnectorBreakerOpen", "channel=whatsapp"], "team"),
        (["alertname=SomethingElse"], "team"),
    ],
)
def test_alerts_reach_their_receiver(labels: list[str], receiver: str) -> None:
    routed = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert routed.returncode == 0, routed.stdout + routed.stderr
    assert routed.stdout.split() == [receiver]
