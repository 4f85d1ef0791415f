"""The annotator interface: one class per perception stage.

An annotator declares what it fills and needs, which models (weight specs) and Python packages it
uses, and its options with defaults; it loads its models once (:meth:`Annotator.load`) and turns a
batch of images and their current graphs into new graphs (:meth:`Annotator.process`), batching the
model calls inside. The graphs it returns list the fields it filled and carry its provenance
(models, weights file and sha256, options, library versions) under ``provenance["stages"][name]``.

``optional`` annotators are skipped with a warning when their weights or packages are missing (see
:class:`~scene_graphs.perception.pipeline.Pipeline`); their fields are then not listed, so programs
that need them skip those graphs cleanly.
"""

from __future__ import annotations

import importlib.util
import logging
from importlib import metadata
from typing import Any, ClassVar, Mapping, Sequence

from ..model import SceneGraph
from .images import ImageItem
from .weights import CATALOG, ResolvedWeights, WeightSpec, get_spec, resolve

log = logging.getLogger("scene_graphs.perception")

VISION_EXTRA = "mmgen[vision]"


class MissingDependencyError(ImportError):
    """A Python package an annotator needs is not installed; the message names the pip extra."""


class AnnotatorError(RuntimeError):
    """An annotator cannot run as configured (bad option, missing input field)."""


class ServiceError(AnnotatorError):
    """A service a stage calls (a model server) failed: never a verdict about the image. The pipeline
    raises it instead of recording the images as failed, so the shard fails and a rerun retries it."""


def require(stage: str, modules: Mapping[str, str], extra: str = VISION_EXTRA) -> None:
    """Raise :class:`MissingDependencyError` unless every module (import name -> pip name) imports."""
    missing = [pip for mod, pip in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise MissingDependencyError(
            f"stage {stage!r} needs the Python package(s) {', '.join(missing)}: pip install '{extra}'")


def library_versions(distributions: Sequence[str]) -> dict[str, str]:
    """Installed versions of the named distributions (``None`` ones left out)."""
    out: dict[str, str] = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda:0`` when torch sees a GPU, else ``cpu``; ``cuda`` -> ``cuda:0``; others as given."""
    device = (device or "auto").strip().lower()
    if device == "auto":
        try:
            import torch

            return "cuda:0" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    if device == "cuda":
        return "cuda:0"
    if device != "cpu" and not (device.startswith("cuda:") and device[5:].isdigit()) and device != "mps":
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    return device


def _coerce(stage: str, key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of its default (ints become floats where floats are expected)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise AnnotatorError(f"stage {stage!r}: option {key!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise AnnotatorError(f"stage {stage!r}: option {key!r} must be a number, got {value!r}")
        return float(value) if isinstance(default, float) else value
    if isinstance(default, (list, tuple)):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise AnnotatorError(f"stage {stage!r}: option {key!r} must be a list, got {value!r}")
        return tuple(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise AnnotatorError(f"stage {stage!r}: option {key!r} must be a string, got {value!r}")
    return value


class Annotator:
    """Base class of every perception stage. Subclasses set the class attributes and implement
    :meth:`_load` and :meth:`process`."""

    name: ClassVar[str] = ""
    fills: ClassVar[frozenset[str]] = frozenset()
    needs: ClassVar[frozenset[str]] = frozenset()
    """Graph fields that must be present before this stage runs (``objects`` for most)."""
    requires: ClassVar[Mapping[str, str]] = {}
    """Python modules this stage imports (import name -> pip distribution)."""
    distributions: ClassVar[tuple[str, ...]] = ()
    """Distributions whose versions go into the provenance."""
    defaults: ClassVar[Mapping[str, Any]] = {}
    """Options and their defaults; ``model`` (when present) names the weight spec in the catalog."""
    model_choices: ClassVar[tuple[str, ...]] = ()
    default_optional: ClassVar[bool] = False

    def __init__(self, *, weights: Mapping[str, Any] | None = None, offline: bool | None = None,
                 optional: bool | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise AnnotatorError(f"stage {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                                 f"options: {', '.join(self.defaults) or 'none'}")
        self.options: dict[str, Any] = dict(self.defaults)
        for key, value in options.items():
            self.options[key] = _coerce(self.name, key, value, self.defaults[key])
        if self.model_choices and self.options.get("model") not in self.model_choices:
            raise AnnotatorError(f"stage {self.name!r}: model {self.options.get('model')!r} is not one of "
                                 f"{', '.join(self.model_choices)}")
        self.explicit_weights: dict[str, Any] = dict(weights or {})
        self.offline = offline
        self.optional = self.default_optional if optional is None else bool(optional)
        self.device = "cpu"
        self.loaded = False
        self.resolved: dict[str, ResolvedWeights] = {}
        self._provenance: dict[str, Any] | None = None

    # ------------------------------------------------------------------ set-up
    def model_names(self) -> list[str]:
        """Names of the weight specs this configuration may use (the required one first)."""
        model = self.options.get("model")
        return [model] if isinstance(model, str) and model in CATALOG else []

    @property
    def weights(self) -> list[WeightSpec]:
        """The weight specs (catalog entries) this configuration may use."""
        return [get_spec(n) for n in self.model_names()]

    def check_requires(self) -> None:
        require(self.name, self.requires)

    def explicit_for(self, model: str) -> Any:
        """A path the user gave for ``model`` (by model name, or by this stage's name)."""
        return self.explicit_weights.get(model, self.explicit_weights.get(self.name))

    def resolve_weights(self, model: str) -> ResolvedWeights:
        found = resolve(model, self.explicit_for(model), offline=self.offline)
        self.resolved[model] = found
        return found

    def load(self, device: str = "cpu") -> Annotator:
        """Check packages, find weights and load the models, once. Raises
        :class:`MissingDependencyError` / :class:`~scene_graphs.perception.weights.MissingWeightsError`."""
        if self.loaded:
            return self
        self.check_requires()
        self.device = resolve_device(device)
        self._load(self.device)
        self.loaded = True
        return self

    def _load(self, device: str) -> None:
        """Load models on ``device`` (subclasses)."""

    # ------------------------------------------------------------------ running
    reads_ahead: ClassVar[bool] = False
    """Whether :meth:`read_ahead` does this stage's model work from the pixels alone (no graph field), so
    the pipeline may run it in a thread while the earlier stages run."""

    def read_ahead(self, batch: Sequence[ImageItem]) -> Any:
        """Model work on ``batch`` that needs no graph field; :meth:`process` receives it as ``ahead``
        (stages with :attr:`reads_ahead` implement it)."""
        raise NotImplementedError

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        """New graphs for a batch of images (same order). Subclasses implement it."""
        raise NotImplementedError

    def __call__(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph], ahead: Any = None) -> list[SceneGraph]:
        """``process`` with checks; ``ahead`` is :meth:`read_ahead`'s result for ``batch`` when the pipeline ran it."""
        if not self.loaded:
            self.load(self.device)
        if len(batch) != len(graphs):
            raise AnnotatorError(f"stage {self.name!r}: {len(batch)} images but {len(graphs)} graphs")
        for item, graph in zip(batch, graphs):
            if item.image_id != graph.image_id:
                raise AnnotatorError(f"stage {self.name!r}: image {item.path} does not match graph {graph.image_id}")
            missing = [f for f in self.needs if f not in graph.fields]
            if missing:
                raise AnnotatorError(f"stage {self.name!r} needs the field(s) {', '.join(missing)} "
                                     f"(run the stage that fills them first) for image {item.path}")
        out = self.process(batch, graphs) if ahead is None else self.process(batch, graphs, ahead=ahead)
        if len(out) != len(graphs):
            raise AnnotatorError(f"stage {self.name!r} returned {len(out)} graphs for {len(graphs)} images")
        return out

    # ------------------------------------------------------------------ provenance
    def provenance(self) -> dict[str, Any]:
        """Models (with weights file and sha256), options and library versions of this stage."""
        if self._provenance is None:
            self._provenance = {
                "fills": sorted(self.fills),
                "models": [r.describe() for r in self.resolved.values()],
                "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(self.options.items())},
                "libraries": library_versions(self.distributions),
            }
        return self._provenance

    def stamp(self, graph: SceneGraph, fields: frozenset[str] | set[str] | None = None, **changes: Any) -> SceneGraph:
        """``graph`` with ``changes`` applied, ``fields`` (default: :attr:`fills`) added and this
        stage's provenance recorded."""
        prov = dict(graph.provenance)
        stages = dict(prov.get("stages", {}))
        stages[self.name] = self.provenance()
        prov["stages"] = stages
        return graph.replace(fields=graph.fields | (self.fills if fields is None else frozenset(fields)),
                             provenance=prov, **changes)
