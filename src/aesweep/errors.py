"""Errors for user mistakes: each renders as one line naming the key, the bad value and what is allowed."""


class AesweepError(Exception):
    """A mistake in the user's input (config, data, paths). Shown as one line, never a traceback."""


# A reason recorded on a trial or shown in an error line is cut here: one line, not a traceback.
REASON_MAX_CHARS = 300


def one_line(error: BaseException) -> str:
    """`TypeError: what it says`, whitespace folded, so a library's multi-line message fits an error line."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"[:REASON_MAX_CHARS]


def folded(error: BaseException) -> str:
    """What an error says, on one line (its type's name when it says nothing)."""
    return " ".join(str(error).split()) or type(error).__name__


def as_typed(value: object) -> str:
    """A config value as the user types it in an override: true, false, null; strings quoted to show their ends."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a typed float key holds 0.0 where the user wrote 0
    return "null" if value is None else repr(value)


class ConfigError(AesweepError):
    def __init__(self, key: str, value: object, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={as_typed(value)} is not allowed: {allowed}")


class DataError(AesweepError):
    """Dataset files missing, truncated or failing their checksum, or an offline source that is not the dataset."""


class OutputError(AesweepError):
    """An output location (a command's --out, --root) that cannot be written: `--out='x': cannot write there (why)`."""

    def __init__(self, option: str, path: object, reason: str):
        self.option, self.path, self.reason = option, str(path), reason
        super().__init__(f"{option}={str(path)!r}: cannot write there ({reason})")
