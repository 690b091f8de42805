"""The one exception type for mistakes a user can make (a file, a column, a value, a setting).

The command line prints these as a single `error:` line without a traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A user-caused problem, with a message that names the offending file, column or value."""


def exception_chain(error: BaseException | None, limit: int = 10) -> list[BaseException]:
    """`error` and what it was raised from or during, outermost first. Libraries wrap the reason a user
    can act on (a constructor's `ConfigError`, a file's bad bytes) under messages of their own."""
    chain: list[BaseException] = []
    while error is not None and len(chain) < limit:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain
