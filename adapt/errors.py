"""User-facing errors.

Every problem with a user's input (config, data files, domain names) is raised as a
:class:`TransferlabError` whose message is one line naming the file or field and what was expected.
The CLI prints that line and exits with code 2; it never shows a traceback for these.
"""

from __future__ import annotations


class TransferlabError(Exception):
    """Bad user input. ``str(err)`` is a one-line message fit to show as is."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(TransferlabError):
    """A config field is missing, malformed or inconsistent."""

    def __init__(self, field: str, message: str, source: str | None = None):
        where = f"{source}: " if source else ""
        super().__init__(f"{where}config field '{field}': {message}")
        self.field = field


class DataError(TransferlabError):
    """A data file or domain cannot be read or does not fit the expected layout."""
