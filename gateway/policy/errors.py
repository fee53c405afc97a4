"""The one error a policy that does not validate produces: one line naming the file, line, place and problem."""

from __future__ import annotations


class PolicyError(ValueError):
    """`policy.yaml:12: route 3 (/orgs/{org_id}/notes): match: the path has no parameter 'org'`.

    The gateway prints it and exits 1 at start; `taskgate policy check` prints it and exits 1.
    """

    def __init__(self, source: str, line: int | None, where: str | None, problem: str) -> None:
        self.source = source
        self.line = line
        self.where = where
        self.problem = problem
        location = source if line is None else f"{source}:{line}"
        super().__init__(f"{location}: {where}: {problem}" if where else f"{location}: {problem}")
