"""A Dockerfile read into build stages and instructions, so tests can check images that cannot be built here.

There is no Docker engine on the test machines; these structural checks (base image, user, what is copied,
what is exposed, the start command) are what stands in for `docker build`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """Exec form (a JSON array) or shell form, as argv."""
        text = self.arguments.strip()
        if text.startswith("["):
            parsed: list[str] = json.loads(text)
            return parsed
        return shlex.split(text)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV KEY=value pairs (the only ENV form this project uses)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.arguments):
                key, sep, value = word.partition("=")
                assert sep, f"use ENV KEY=value, not {instruction.arguments!r}"
                values[key] = value
        return values

    def copied_sources(self) -> list[str]:
        """Sources of COPY instructions from the build context (not --from another stage)."""
        sources: list[str] = []
        for instruction in self.all("COPY"):
            words = instruction.words()
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words[:-1] if not w.startswith("--")]
        return sources


def parse(path: Path) -> list[Stage]:
    """Stages in order; instructions with their line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, f"{path.name} ends inside a continued line"
    stages: list[Stage] = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", arguments.strip(), re.IGNORECASE)
            assert match, f"unreadable FROM {arguments!r}"
            stages.append(Stage(base=match[1], name=match[2]))
            continue
        assert stages, f"{path.name}: {keyword} before FROM"
        stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def ignore_patterns(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
