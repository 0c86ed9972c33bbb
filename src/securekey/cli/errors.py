"""The CLI's one error type: a message for the user that says what is wrong and what to do.

Raised anywhere in the CLI; ``securekey.cli.entry`` prints it as one line on stderr and exits 1.
"""

from __future__ import annotations

# Not ``typing.TYPE_CHECKING``: importing typing is a tenth of the fast path's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["CliError", "ResponseError"]


class CliError(Exception):
    """A failure to show as one line; ``exit_code`` is the process's exit status."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ResponseError(CliError):
    """The server refused a request; ``id`` and ``body`` are its Heroku-style error answer."""

    def __init__(self, message: str, *, status: int, id_: str, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.id = id_
        self.body = body
