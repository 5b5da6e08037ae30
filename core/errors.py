"""One error hierarchy for stressgrid.

Every message names the file, field or argument, the value that was given and what was expected, so
that the command line can print it on one line without a traceback.
"""

from __future__ import annotations

__all__ = [
    "StressGridError",
    "ConfigError",
    "DataError",
    "InfeasibleError",
    "TaskError",
]


class StressGridError(Exception):
    """Base class of every error stressgrid raises on purpose."""

    #: exit code the command line uses for this error
    exit_code: int = 1


class ConfigError(StressGridError):
    """A batch, portfolio or limits file, or a command-line argument, is invalid."""

    exit_code = 2


class DataError(StressGridError):
    """Market data (history file, snapshot) is missing or invalid."""

    exit_code = 2


class InfeasibleError(StressGridError):
    """An optimisation has no solution under the constraints given; the message says what to relax."""

    exit_code = 3


class TaskError(StressGridError):
    """A grid task failed; the message names the task, the scenarios and the reason."""

    exit_code = 4
