"""One exception tree. The CLI turns a RockoptError into one line on stderr and exit code 2."""


class RockoptError(Exception):
    """A problem the user can fix: bad input, bad setting, missing file. Its message is one line."""


class ConfigError(RockoptError):
    """A setting, config file or study file is wrong; the message names the file and key."""


class DataError(RockoptError):
    """The data set does not follow the expected layout or has no usable images."""


class UnreadableImage(Exception):
    """One image could not be decoded. Training skips it and counts it; never shown as a crash."""
