"""A restricted unpickler for ProVision's pickled segmentation masks (lists of scipy.sparse matrices).

Unpickling runs whatever callables the pickle names, so an ordinary ``pickle.load`` of an untrusted
file can run any code. :class:`RestrictedUnpickler` resolves only an explicit table of globals: the
numpy functions and classes that rebuild arrays (``ndarray``, ``dtype``, ``_reconstruct``, ``scalar``,
``_frombuffer``) and the scipy.sparse CSR / CSC / COO matrix and array classes, under their current
and older module paths, plus the two helpers old pickle protocols use (``copyreg._reconstructor``
with ``object``, and ``_codecs.encode`` for bytes). Anything else, ``os.system`` included, raises
:class:`UnsafePickleError` before it is even imported. Persistent ids are refused too.

Even so, only use it on files you have reason to trust: it bounds what a pickle can *call*, not how
much memory it can ask for. The caller still checks the types and shapes of what comes back.
"""

from __future__ import annotations

import io
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allowed table."""


def _numpy_core(module: str, name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        import importlib

        for candidate in (module.replace("numpy.core", "numpy._core"), module):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise UnsafePickleError(f"{module}.{name} is not available in this numpy")

    return resolve


def _sparse(name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        import scipy.sparse

        return getattr(scipy.sparse, name)

    return resolve


def _builtin(name: str) -> Callable[[], Any]:
    def resolve() -> Any:
        import builtins
        import codecs
        import copyreg

        return {"object": builtins.object, "_reconstructor": copyreg._reconstructor,  # type: ignore[attr-defined]
                "encode": codecs.encode}[name]

    return resolve


@lru_cache(maxsize=None)
def allowed_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    """``(module, name)`` -> resolver, for every global a mask pickle may name."""
    table: dict[tuple[str, str], Callable[[], Any]] = {}
    table[("numpy", "ndarray")] = _numpy_core("numpy", "ndarray")
    table[("numpy", "dtype")] = _numpy_core("numpy", "dtype")
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _numpy_core(f"{core}.multiarray", "_reconstruct")
        table[(f"{core}.multiarray", "scalar")] = _numpy_core(f"{core}.multiarray", "scalar")
        table[(f"{core}.numeric", "_frombuffer")] = _numpy_core(f"{core}.numeric", "_frombuffer")
    for fmt in ("csr", "csc", "coo"):
        for kind in ("matrix", "array"):
            name = f"{fmt}_{kind}"
            for module in (f"scipy.sparse._{fmt}", f"scipy.sparse.{fmt}", "scipy.sparse"):
                table[(module, name)] = _sparse(name)
    for module in ("copyreg", "copy_reg"):
        table[(module, "_reconstructor")] = _builtin("_reconstructor")
    for module in ("builtins", "__builtin__"):
        table[(module, "object")] = _builtin("object")
    table[("_codecs", "encode")] = _builtin("encode")
    return table


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in :func:`allowed_globals`."""

    def find_class(self, module: str, name: str) -> Any:
        resolver = allowed_globals().get((module, name))
        if resolver is None:
            raise UnsafePickleError(f"refusing to unpickle {module}.{name}: only numpy arrays and scipy.sparse "
                                    "matrices may appear in a mask pickle")
        return resolver()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent ids")


def loads(data: bytes) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load(path: Path) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`."""
    with Path(path).open("rb") as f:
        return RestrictedUnpickler(f).load()
