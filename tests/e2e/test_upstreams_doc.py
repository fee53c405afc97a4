"""docs/upstreams.md shows the notes example's own lines: the policy, the dependency and the routes that
tests/e2e/test_notes_example.py runs behind a real gateway. A change to either side fails here."""

from __future__ import annotations

import pytest

from tests.support.processes import REPO_ROOT
from tests.support.snippets import marked_lines

DOC = (REPO_ROOT / "docs" / "upstreams.md").read_text()
NOTES = REPO_ROOT / "examples" / "notes"


def _blocks(language: str) -> list[str]:
    """The bodies of the doc's fenced blocks in that language."""
    return [part.split("\n```", 1)[0] for part in DOC.split(f"```{language}\n")[1:]]


@pytest.mark.parametrize(
    ("file", "name", "comment", "language"),
    [
        ("policy.yaml", "notes-policy", "#", "yaml"),
        ("app.py", "trust", "#", "python"),
        ("app.py", "routes", "#", "python"),
    ],
)
def test_each_snippet_is_the_examples_own_lines(file: str, name: str, comment: str, language: str) -> None:
    assert marked_lines(NOTES / file, name, comment) in _blocks(language)


def test_the_upstream_entry_is_the_policy_files() -> None:
    policy = (NOTES / "policy.yaml").read_text().splitlines()
    [entry] = [line for line in policy if line.startswith("  notes: ")]
    assert f"upstreams:\n{entry}" in _blocks("yaml")


def test_every_block_is_exercised() -> None:
    """No snippet in the doc that the tests above do not compare."""
    assert len(_blocks("yaml")) == 2 and len(_blocks("python")) == 2
    assert "```" not in DOC.replace("```yaml\n", "").replace("```python\n", "").replace("```\n", "")
