"""The one exception type for bad user input, reported as a single line by the entrypoint."""


class ConfigError(ValueError):
    """Bad input found before (or instead of) training; the message says what to fix."""
