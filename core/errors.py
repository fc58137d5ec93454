"""Exceptions a user can act on. At the edges (CLI, API, connectors) each becomes a clear message."""


class LinetwinError(Exception):
    """Base of every error that is reported to a user as a message, not a traceback."""


class ConfigError(LinetwinError):
    """The configuration file, environment or a flag is invalid."""


class RejectedInput(LinetwinError):
    """An input sample or message was refused; ``reason`` is the counter label it is accounted under."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
