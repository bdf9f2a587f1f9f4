"""The container image (Dockerfile): hadolint finds nothing, and it is built the way the
manifests use it — multi-stage, one image for every role, non-root, health-checked."""

from __future__ import annotations

import re

from tests.ops.deploy_helpers import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_hadolint_finds_nothing_to_fix() -> None:
    result = run(tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_and_the_final_stage_gets_only_the_built_virtualenv() -> None:
    stages = [args for word, args in _instructions() if word == "FROM"]
    assert len(stages) >= 2 and " AS build" in stages[0]
    final = _final_stage()
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=build /opt/chat4all /opt/chat4all"], "only the virtualenv comes in, no source or tooling"
    runs = " ".join(args for word, args in final if word == "RUN")
    assert not re.search(r"\b(pip|apt-get|gcc|make)\b", runs), runs
    build_runs = " ".join(args for word, args in _instructions()[: len(_instructions()) - len(final)] if word == "RUN")
    assert "pip uninstall -y pip setuptools wheel" in build_runs, "the virtualenv ships without its build tools"


def test_the_final_stage_runs_as_a_numeric_non_root_user_with_a_healthcheck_and_the_role_as_command() -> None:
    final = dict(_final_stage())
    user = final["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert "/health/live" in final["HEALTHCHECK"] and "CHAT4ALL_PORT" in final["HEALTHCHECK"]
    assert final["ENTRYPOINT"] == '["chat4all"]'
    assert final["CMD"] == '["serve", "api"]'
    assert "CHAT4ALL_HOST=0.0.0.0" in final["ENV"] and "CHAT4ALL_PORT=8080" in final["ENV"]


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    lines = [x for x in (ROOT / ".dockerignore").read_text().splitlines() if x and not x.startswith("#")]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)
