"""The mixer's own error, importable without loading the mixer (the CLI catches it)."""


class MixError(RuntimeError):
    """The configured mix cannot be produced; the message says what is missing."""
