"""The one exception type for mistakes a user can make (a file, a column, a value, a setting).

The command line prints these as a single `error:` line without a traceback; anything else is a bug
and keeps its traceback.
"""


class ConfigError(ValueError):
    """A user-caused problem, with a message that names the offending file, column or value."""
