"""Every ```python block of README.md and docs/*.md runs against a fresh test database,
so the documentation cannot drift from the code.

The blocks of one file run in order in one namespace (a later block may use what an
earlier one defined). They see JOBFORGE_DATABASE_URL (a fresh migrated database) and
SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY (the PostgREST stub on that database).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobforge_sdk.flags import Feature
from tests.support.clients import JWT_SECRET
from tests.support.postgrest import make_jwt

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_the_readme_has_runnable_examples() -> None:
    assert len(python_blocks(REPO / "README.md")) >= 3


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_examples_run(
    path: Path,
    fresh_db_url: str,
    stub_for: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = python_blocks(path)
    stub = stub_for(fresh_db_url)
    monkeypatch.setenv("JOBFORGE_DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", make_jwt(JWT_SECRET, "service_role"))
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "docs-example-secret-of-32-characters!")
    for feature in Feature:
        monkeypatch.delenv(feature.env_var, raising=False)
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem}"}
    for line, code in blocks:
        compiled = compile(code, f"{path.relative_to(REPO)}:{line}", "exec")
        exec(compiled, namespace)
