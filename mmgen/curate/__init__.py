"""Curation of QA records: duplicates, answer balance, length, language, quality, and an optional LLM judge.

See :mod:`mmgen.curate.stage` for the order of the filters and the output layout.
"""

from .stage import CurateOptions, curate

__all__ = ["CurateOptions", "curate"]
