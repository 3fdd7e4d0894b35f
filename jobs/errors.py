"""The error a user can fix, and how it reaches them: one line, exit 2.

Raised on the driver it is caught by the CLI directly. Raised inside a Spark or Ray
task it arrives wrapped in the engine's own exception (a Python traceback inside a
Java one); `user_message` finds the original message in that text, so the user
sees the same one line either way and the traceback goes to the log.
"""

from __future__ import annotations

import re


class UserError(RuntimeError):
    """Bad input or configuration; the message names the input and the fix."""


class MixError(UserError):
    """The configured mix cannot be produced; the message says what is missing."""


# Errors a task raises about its inputs that the user fixes, not us.
_TASK_USER_ERRORS = ("UserError", "MixError", "ConfigError", "FileNotFoundError", "PermissionError",
                     "NotADirectoryError", "IsADirectoryError", "FileExistsError",
                     # a user template stopped by the sandbox (transforms/sandbox.py)
                     "TemplateLimitError", "SecurityError")
_WRAPPED = re.compile(
    r"^(?:[\w.]+\.)?(" + "|".join(_TASK_USER_ERRORS) + r"): (.+?)\s*$", re.MULTILINE)


def user_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, also when an engine wrapped it; else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (UserError, PermissionError, FileNotFoundError, NotADirectoryError,
                            IsADirectoryError, FileExistsError)):
            return str(exc)
        exc = exc.__cause__ or getattr(exc, "cause", None) or exc.__context__
    return None


def wrapped_user_message(exc: BaseException) -> str | None:
    """`user_message`, or the last user error named in an engine exception's text."""
    direct = user_message(exc)
    if direct is not None:
        return direct
    text = "\n".join(str(a) for a in getattr(exc, "args", ()) if isinstance(a, str)) or str(exc)
    matches = _WRAPPED.findall(text)
    return matches[-1][1] if matches else None
