"""The error-code enum of the OpenAPI document names every code the source can answer with."""

from __future__ import annotations

import re
from pathlib import Path

from chat4all.api.openapi_product import ERROR_CODES

SOURCE = Path(__file__).resolve().parents[2] / "src" / "chat4all"
# a code given to an error: class attribute, keyword, error_response(...) or a socket's _error(...)
_CODE = re.compile(r'(?:\bcode\s*=\s*|error_response\(\s*\d+,\s*|\b_error\(\s*)"([a-z_]+)"')


def test_every_error_code_in_the_source_is_in_the_documented_enum() -> None:
    found = {m for path in SOURCE.rglob("*.py") for m in _CODE.findall(path.read_text())}
    assert found, "the pattern found no code at all: it no longer matches how errors are raised"
    assert found - set(ERROR_CODES) == set()


def test_the_enum_has_no_duplicates() -> None:
    assert len(ERROR_CODES) == len(set(ERROR_CODES))
