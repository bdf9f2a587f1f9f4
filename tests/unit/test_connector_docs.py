"""docs/connectors.md and the README keep up with the code: every connector setting is in the
configuration table, and the example plugin uses only the public plugin API."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from chat4all.config import Settings
from chat4all.connectors import base

ROOT = Path(__file__).resolve().parents[2]


def test_every_connector_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    settings = [name for name in Settings.model_fields if name.startswith("connectors_")]
    assert settings
    missing = [n for n in settings if f"| `CHAT4ALL_{n.upper()}` |" not in readme]
    assert missing == []


def test_the_example_connector_imports_only_the_plugin_api_and_parses() -> None:
    doc = (ROOT / "docs" / "connectors.md").read_text()
    [example] = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL) if "class AcmeConnector" in b]
    tree = ast.parse(example)
    imported = {
        (node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert {m for m, _ in imported} == {"chat4all.connectors.base"}
    assert {name for _, name in imported} <= set(base.__all__)
    methods = {f.name for f in ast.walk(tree) if isinstance(f, ast.AsyncFunctionDef)}
    assert {"connect", "send_message", "send_file", "handle_webhook", "disconnect"} <= methods
