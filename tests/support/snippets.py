"""Code that a doc shows, kept in a file that a test runs, so the doc cannot drift from what works.

A snippet is the lines between `// NAME:start` and `// NAME:end` (`# NAME:…` in Python and YAML) in a source
file; a test asserts the doc contains them verbatim (as the body of a fenced block).
"""

from __future__ import annotations

from pathlib import Path


def marked_lines(path: Path, name: str, comment: str = "//") -> str:
    """The lines between `{comment} {name}:start` and `{comment} {name}:end` in path, joined with newlines,
    without blank lines at either end (a formatter may put some before the end marker)."""
    lines = path.read_text().splitlines()
    marked = lines[lines.index(f"{comment} {name}:start") + 1 : lines.index(f"{comment} {name}:end")]
    return "\n".join(marked).strip("\n")
