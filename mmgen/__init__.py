"""mmgen: images -> scene graphs -> verified question-answer programs -> training data."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmgen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
