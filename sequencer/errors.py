"""Errors that are the user's to fix: the scripts print them as one line and exit with status 2."""


class SequencerError(ValueError):
    """Bad configuration or input. The message names what was wrong and where."""


class ConfigError(SequencerError):
    """A configuration key, value or file is wrong."""


class DataError(SequencerError):
    """A data file (training pairs, prediction input, a run folder) is wrong."""


class TuningError(SequencerError):
    """A member of a tuned population failed; Ray Tune's results folder holds its traceback."""
