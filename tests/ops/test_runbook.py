"""docs/runbook.md: a section for every alert the rules can fire (what it means, the first three
commands, how to recover), and every Chat4All command it tells an operator to run exists with
the options it shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from chat4all.cli import app
from tests.ops.deploy_helpers import DEPLOY, ROOT

RUNBOOK = ROOT / "docs" / "runbook.md"
ALERTS = [r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def _sections() -> dict[str, str]:
    parts = re.split(r"^## ", RUNBOOK.read_text(), flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


def _commands(text: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_every_alert_has_a_section_with_its_meaning_three_commands_and_the_recovery() -> None:
    sections = _sections()
    assert ALERTS, "the rules name alerts"
    for alert in ALERTS:
        assert alert in sections, f"docs/runbook.md has no section for {alert}"
        body = sections[alert]
        assert "**What it means.**" in body and "**Recover.**" in body, alert
        assert len(_commands(body)) == 3, f"{alert}: the first three commands"


def test_the_recovery_procedures_the_issue_names_are_there() -> None:
    text = RUNBOOK.read_text()
    for title in ("Replay the dead-letter queue", "Add a router", "Fail over the database", "Rotate the JWT secret"):
        assert f"### {title}" in text
    for anchor in re.findall(r"\]\(#([a-z0-9-]+)\)", text):
        assert anchor in {re.sub(r"[^a-z0-9 -]", "", t.lower()).replace(" ", "-") for t in re.findall(r"^#+ (.+)$", text, re.M)}


def _chat4all_commands() -> list[list[str]]:
    lines = _commands(RUNBOOK.read_text())
    found = [shlex.split(line) for line in lines if line.startswith("chat4all ")]
    # inline ones too: `chat4all connectors set CHANNEL --disable`
    found += [shlex.split(c) for c in re.findall(r"`(chat4all [^`]+)`", RUNBOOK.read_text())]
    return found


@pytest.mark.parametrize("words", _chat4all_commands(), ids=" ".join)
def test_each_chat4all_command_exists_with_the_options_shown(words: list[str]) -> None:
    command: Any = typer.main.get_command(app)  # typer's own click: duck-typed below
    path: list[str] = []
    for word in words[1:]:
        if word not in getattr(command, "commands", {}):
            break
        command, path = command.commands[word], [*path, word]
    assert path and not hasattr(command, "commands"), f"`{' '.join(words)}` names no chat4all command"
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for option in (w.split("=")[0] for w in words if w.startswith("-")):
        assert option in options, f"`chat4all {' '.join(path)}` has no option {option}"
    arguments = [w for w in words[len(path) + 1 :] if not w.startswith("-")]
    positional = [p for p in command.params if p.param_type_name == "argument"]
    flags_with_values = sum(1 for w in words if w.startswith("--") and "=" not in w and _takes_value(command, w))
    assert len(arguments) - flags_with_values - _short_values(command, words) <= len(positional), words


def _takes_value(command: Any, option: str) -> bool:
    return any(option in p.opts and not getattr(p, "is_flag", False) for p in command.params)


def _short_values(command: Any, words: list[str]) -> int:
    return sum(1 for w in words if w.startswith("-") and not w.startswith("--") and _takes_value(command, w))


def test_each_services_sh_command_exists() -> None:
    usage = (ROOT / "scripts" / "services.sh").read_text()
    lines = [line for line in _commands(RUNBOOK.read_text()) if line.startswith("scripts/services.sh ")]
    lines += re.findall(r"`(scripts/services.sh [^`]+)`", RUNBOOK.read_text())
    assert lines
    for line in lines:
        sub = shlex.split(line)[1]
        assert f"    {sub})" in usage or f" {sub} |" in usage or f"| {sub})" in usage, line
    kafka_class = [shlex.split(x)[2] for x in lines if " kafka-tool " in x]
    state = Path(os.environ.get("CHAT4ALL_SERVICES_DIR") or ROOT / ".services")
    jars = sorted((state / "kafka" / "libs").glob("kafka-tools-*.jar"))
    for cls in kafka_class:
        assert cls.startswith("org.apache.kafka.tools."), cls
        if jars:  # the class is in the Kafka tools jar scripts/services.sh resolved
            listing = subprocess.run(["unzip", "-l", str(jars[0])], capture_output=True, text=True).stdout
            assert cls.replace(".", "/") + ".class" in listing
