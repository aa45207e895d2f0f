"""The one error the dev stack reports to its user."""

from __future__ import annotations


class DevStackError(RuntimeError):
    """A start-up problem the user can fix (port taken, server unreachable, ...): shown as one line."""
