"""What the deployment checks share: the repository's paths, the app's settings and roles, the
ports of scripts/services.sh, and the tools the test extra installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from chat4all.config import Settings
from chat4all.runtime import Role

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# every CHAT4ALL_* variable the app reads (src/chat4all/config.py)
SETTINGS_ENV = {f"CHAT4ALL_{name.upper()}" for name in Settings.model_fields}

# what each role needs set to run the production profile (the defaults are the embedded one's)
_BACKENDS = {"DATABASE_URL", "EVENT_LOG_URL", "PRESENCE_URL", "METADATA_URL", "BLOB_URL"}
_SERVER = {"HOST", "PORT", "OTLP_ENDPOINT"}
REQUIRED_ENV: dict[str, set[str]] = {
    Role.API.value: {f"CHAT4ALL_{n}" for n in _BACKENDS | _SERVER | {"JWT_SECRET", "PUBLIC_BASE_URL"}},
    Role.ROUTER.value: {f"CHAT4ALL_{n}" for n in _BACKENDS | _SERVER},
    Role.WEBHOOKS.value: {f"CHAT4ALL_{n}" for n in _BACKENDS | _SERVER},
    "migrate": {"CHAT4ALL_DATABASE_URL"},
}
# an embedded default here would split the stack (each process with its own SQLite, log, ...)
EMBEDDED_VALUES = {"db", "memory://"}


def role_of(args: list[str]) -> str:
    """``["serve", "router"]`` → "router"; ``["migrate"]`` → "migrate"."""
    if args[:1] == ["migrate"]:
        return "migrate"
    assert len(args) == 2 and args[0] == "serve", f"a Chat4All container runs `serve ROLE` or `migrate`, not {args}"
    assert args[1] in {r.value for r in Role if r is not Role.ALL}, f"unknown role {args[1]!r}"
    return args[1]


def services_ports() -> dict[str, int]:
    """The PORT variables of scripts/services.sh (PG_PORT=5432 ...), by name."""
    text = (ROOT / "scripts" / "services.sh").read_text()
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"\b([A-Z0-9_]+_PORT)=(\d+)\b", text)}


def up_ports() -> dict[str, list[int]]:
    """The ports scripts/up.sh gives the Chat4All processes, by role."""
    line = re.search(r"^api=.*# make up$", (ROOT / "scripts" / "up.sh").read_text(), re.M)
    assert line, "scripts/up.sh names its default ports on one line ending '# make up'"
    found = dict(re.findall(r'(\w+)="([\d ]+)"', line.group(0)))
    by_role = {"api": "api", "router": "routers", "webhooks": "webhooks"}
    return {role: [int(p) for p in found[name].split()] for role, name in by_role.items()}


def tool(name: str) -> str:
    """A command-line tool of the test extra (installed into the venv beside this Python)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is not installed: `make test` installs it (pyproject.toml, extra 'test')"
    return found


def run(*cmd: str, stdin: str | None = None, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=cwd, timeout=timeout)
