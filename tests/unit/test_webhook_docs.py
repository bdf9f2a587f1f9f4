"""The signature snippets in docs/webhooks.md verify what Chat4All signs (and nothing else)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from chat4all.domain.webhooks import sign

DOC = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
SECRET = "whsec_docs-test"
BODY = '{"event_id":"e1","type":"message.status","created_at":"2026-01-01T00:00:00+00:00","data":{"status":"SENT","text":"olá"}}'.encode()


def _block(language: str, contains: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)
    return next(b for b in blocks if contains in b)


def _cases() -> list[tuple[bytes, str, bool]]:
    now = int(time.time())
    good = sign(SECRET, BODY, timestamp=now)
    return [
        (BODY, good, True),
        (BODY, f"{good},v1={'0' * 64}", True),
        (BODY + b" ", good, False),
        (BODY, sign("whsec_other", BODY, timestamp=now), False),
        (BODY, sign(SECRET, BODY, timestamp=now - 3600), False),
        (BODY, "garbage", False),
    ]


def test_the_python_snippet_verifies_chat4all_signatures() -> None:
    namespace: dict[str, object] = {}
    exec(_block("python", "def verify_chat4all_signature"), namespace)  # noqa: S102 - our own docs
    verify = namespace["verify_chat4all_signature"]
    for body, header, expected in _cases():
        assert verify(SECRET, body, header) is expected, header  # type: ignore[operator]


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_javascript_snippet_verifies_chat4all_signatures() -> None:
    cases = [{"body": body.hex(), "header": header, "expected": expected} for body, header, expected in _cases()]
    script = _block("javascript", "function verifyChat4AllSignature") + (
        "\nconst cases = JSON.parse(process.argv[1]);\n"
        "console.log(JSON.stringify(cases.map((c) => "
        f"verifyChat4AllSignature({json.dumps(SECRET)}, Buffer.from(c.body, 'hex'), c.header))));\n"
    )
    done = subprocess.run(
        ["node", "-e", script, json.dumps(cases)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [c["expected"] for c in cases]
