"""One exception tree. The CLI turns a RockoptError into one line on stderr and exit code 2."""


class RockoptError(Exception):
    """A problem the user can fix: bad input, bad setting, missing file. Its message is one line."""


class ConfigError(RockoptError):
    """A setting, config file or study file is wrong; the message names the file and key."""


class DataError(RockoptError):
    """The data set does not follow the expected layout or has no usable images."""


class UnreadableImage(Exception):
    """One image could not be decoded. Training skips it and counts it; never shown as a crash.

    `path` names the file (or the cache row's relative path), `reason` says what is wrong;
    str() is "PATH: REASON".
    """

    def __init__(self, path: str, reason: str):
        super().__init__(path, reason)  # both in args: the exception survives pickling between processes
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none), for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
