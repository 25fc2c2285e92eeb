"""The one error type users see: a single line naming the problem and the fix."""


class EdgekitError(Exception):
    """A user-facing error. ``str(err)`` is one line: what is wrong, then what to do."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. {fix}".strip() if fix else problem)
