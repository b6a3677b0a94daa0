"""Errors for user mistakes: each renders as one line naming the key, the bad value and what is allowed."""


class AesweepError(Exception):
    """A mistake in the user's input (config, data, paths). Shown as one line, never a traceback."""


class ConfigError(AesweepError):
    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")


class DataError(AesweepError):
    """MNIST files missing, truncated or failing their checksum."""
