"""Code that a doc shows, kept in a file that a test runs, so the doc cannot drift from what works.

A snippet is the lines between `// NAME:start` and `// NAME:end` in a source file; a test asserts the doc
contains them verbatim (as the body of a fenced block).
"""

from __future__ import annotations

from pathlib import Path


def marked_lines(path: Path, name: str) -> str:
    """The lines between `// {name}:start` and `// {name}:end` in path, joined with newlines."""
    lines = path.read_text().splitlines()
    return "\n".join(lines[lines.index(f"// {name}:start") + 1 : lines.index(f"// {name}:end")])
