"""mmgen: images -> scene graphs -> verified question-answer programs -> training data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmgen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]


def __getattr__(name: str) -> object:
    """``mmgen.open(OUT_DIR)`` (see :mod:`mmgen.store`), imported on first use so ``import mmgen`` stays
    light. Not in ``__all__``: a star import must not shadow the builtin ``open``."""
    if name == "open":
        from .store import open_output

        return open_output
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
