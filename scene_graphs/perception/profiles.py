"""Annotation profiles, per-stage settings from TOML and the command line, and building a pipeline.

Profiles (stages run in this order; ``optional`` stages are skipped with a warning when their
weights or packages are missing):

* ``fast``: ``detect`` (YOLO11n) -> ``segment`` (YOLO11n-seg) -> ``color`` (CIELAB names) ->
  ``relations`` (geometry rules) -> ``ocr`` (RapidOCR).
* ``full``: ``fast`` plus ``depth`` (Depth Anything V2 small, optional), ``clip_attributes`` (OpenCLIP,
  optional) and ``clip_relations`` (CLIP check of the geometric relations, optional); ``relations``
  then also gives *in front of* / *behind* from depth.
* ``quality`` (GPU machines, see :mod:`.quality`): ``tag`` (CLIP zero-shot tags over an open vocabulary)
  -> ``ov_detect`` (OWLv2 asked for the tags) -> ``sam2`` (SAM 2.1 box-prompted masks) -> ``depth``
  (Depth Anything V2 large) -> ``color`` -> ``clip_attributes`` -> ``relations`` -> ``clip_relations``
  -> ``ocr``; no stage is optional (a missing model is an error). ``vlm`` (attributes and relations asked of a
  vision-language model behind an OpenAI-compatible server, :mod:`.vlm`) runs before ``ocr`` when turned on:
  ``--set vlm.enabled=true --set vlm.base_url=http://127.0.0.1:8000/v1 --set vlm.model=NAME``.

A TOML config (read with ``tomllib``) can set the profile and override any stage::

    profile = "full"
    device = "cpu"            # auto | cpu | cuda | cuda:N
    batch_size = 8
    shard_size = 1000
    offline = true            # no downloads

    [stages.detect]
    conf = 0.3
    open_vocab = "yolov8s-worldv2"
    vocabulary = "classes.txt"

    [stages.depth]
    enabled = false           # or: optional = false to make a missing model an error

    [weights]                 # model name (or stage name) = path
    yolo11n = "/models/yolo11n.pt"

On the command line ``--set STAGE.KEY=VALUE`` (value read as TOML, else as a string) and
``--skip STAGE`` / ``--stage STAGE`` override the config, which overrides the profile.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import tomllib

from .base import Annotator
from .pipeline import Pipeline

STAGE_CLASSES: Mapping[str, tuple[str, str]] = {
    "tag": ("quality", "ImageTagger"),
    "detect": ("detect", "Detector"),
    "ov_detect": ("quality", "OpenVocabDetector"),
    "segment": ("segment", "Segmenter"),
    "sam2": ("quality", "BoxSegmenter"),
    "depth": ("depth", "DepthEstimator"),
    "color": ("attributes", "ColorAttributes"),
    "clip_attributes": ("attributes", "ClipAttributes"),
    "relations": ("relations", "GeometryRelations"),
    "clip_relations": ("relations", "ClipRelationCheck"),
    "vlm": ("vlm", "VlmAnnotator"),
    "ocr": ("ocr", "TextReader"),
}
"""Stage name -> (module in this package, class). Also the order stages run in."""

STAGE_ORDER = tuple(STAGE_CLASSES)

PROFILES: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "fast": {"detect": {}, "segment": {}, "color": {}, "relations": {}, "ocr": {}},
    "full": {"detect": {}, "segment": {}, "depth": {"optional": True}, "color": {},
             "clip_attributes": {"optional": True}, "relations": {}, "clip_relations": {"optional": True},
             "ocr": {}},
    "quality": {"tag": {}, "ov_detect": {}, "sam2": {}, "depth": {"model": "depth-anything-v2-large", "mixed_precision": True},
                "color": {}, "clip_attributes": {"optional": False}, "relations": {},
                "clip_relations": {"optional": False}, "vlm": {"enabled": False}, "ocr": {}},
}

DEFAULT_PROFILE = "fast"
"""The profile ``mmgen annotate`` uses when neither ``--profile`` nor the config file names one."""

CONFIG_KEYS = frozenset({"profile", "device", "batch_size", "shard_size", "max_pixels", "offline", "stages", "weights"})
STAGE_KEYS = frozenset({"enabled", "optional"})
"""Keys of a stage table that steer the pipeline rather than the annotator."""


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the file, stage and key."""


def stage_class(name: str) -> type[Annotator]:
    if name not in STAGE_CLASSES:
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGE_ORDER)}")
    module, cls = STAGE_CLASSES[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


@dataclass
class PerceptionConfig:
    """Everything that decides what ``annotate`` does (the CLI and the config file fill it)."""

    profile: str = DEFAULT_PROFILE
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Stage name -> settings (annotator options plus ``enabled`` / ``optional``), for every known stage."""
    weights: dict[str, str] = field(default_factory=dict)
    device: str | None = None
    batch_size: int | None = None
    shard_size: int | None = None
    max_pixels: int | None = None
    offline: bool | None = None

    @classmethod
    def for_profile(cls, profile: str) -> PerceptionConfig:
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
        stages: dict[str, dict[str, Any]] = {}
        for name in STAGE_ORDER:
            base = dict(PROFILES[profile].get(name, {}))
            base.setdefault("enabled", name in PROFILES[profile])
            stages[name] = base
        return cls(profile=profile, stages=stages)

    def set(self, stage: str, key: str, value: Any, where: str = "") -> None:
        """One stage setting (validated against the stage's options)."""
        if stage not in STAGE_CLASSES:
            raise ConfigError(f"{where}unknown stage {stage!r}; stages: {', '.join(STAGE_ORDER)}")
        cls = stage_class(stage)
        if key not in STAGE_KEYS and key not in cls.defaults:
            raise ConfigError(f"{where}stage {stage!r} has no option {key!r}; options: "
                              f"{', '.join(sorted(STAGE_KEYS | set(cls.defaults)))}")
        if key in STAGE_KEYS and not isinstance(value, bool):
            raise ConfigError(f"{where}stage {stage!r}: {key} must be true or false, got {value!r}")
        self.stages.setdefault(stage, {})[key] = value

    def apply_file(self, path: str | os.PathLike[str]) -> None:
        """Apply a TOML config file (the profile it names is applied first)."""
        self.apply_mapping(read_toml(path), f"{path}: ")

    def apply_mapping(self, data: Mapping[str, Any], where: str = "") -> None:
        unknown = sorted(set(data) - CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"{where}unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(CONFIG_KEYS))}")
        if "profile" in data:
            fresh = PerceptionConfig.for_profile(str(data["profile"]))
            self.profile, self.stages = fresh.profile, fresh.stages
        for key in ("device", "batch_size", "shard_size", "max_pixels", "offline"):
            if key in data:
                setattr(self, key, data[key])
        stages = data.get("stages", {})
        if not isinstance(stages, Mapping):
            raise ConfigError(f"{where}[stages] must be a table of stage tables")
        for stage, settings in stages.items():
            if not isinstance(settings, Mapping):
                raise ConfigError(f"{where}[stages.{stage}] must be a table")
            for key, value in settings.items():
                self.set(stage, key, value, where)
        weights = data.get("weights", {})
        if not isinstance(weights, Mapping):
            raise ConfigError(f"{where}[weights] must be a table of model = path")
        for name, value in weights.items():
            self.weights[str(name)] = str(value)

    def apply_override(self, text: str) -> None:
        """``STAGE.KEY=VALUE`` from the command line (VALUE read as TOML, else taken as a string)."""
        target, sep, raw = text.partition("=")
        stage, dot, key = target.strip().partition(".")
        if not sep or not dot or not stage or not key:
            raise ConfigError(f"--set {text!r}: expected STAGE.KEY=VALUE, e.g. detect.conf=0.3")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        self.set(stage, key.strip(), value, "--set: ")

    def enable(self, stage: str, on: bool) -> None:
        stage_class(stage)
        self.stages.setdefault(stage, {})["enabled"] = on

    def enabled_stages(self) -> list[str]:
        return [n for n in STAGE_ORDER if self.stages.get(n, {}).get("enabled")]

    def to_dict(self) -> dict[str, Any]:
        """The settings that shape the graphs (for provenance and for deciding whether a shard is current)."""
        return {"profile": self.profile, "max_pixels": self.max_pixels,
                "stages": {n: {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(self.stages[n].items())}
                           for n in self.enabled_stages()},
                "weights": dict(sorted(self.weights.items()))}


def build_pipeline(config: PerceptionConfig, *, weights: Mapping[str, str] | None = None,
                   offline: bool | None = None, provenance: Mapping[str, Any] | None = None) -> Pipeline:
    """The (unloaded) pipeline for a config; ``weights`` (model or stage name -> path) add to the config's."""
    all_weights = {**config.weights, **dict(weights or {})}
    off = config.offline if offline is None else offline
    stages = []
    for name in config.enabled_stages():
        settings = dict(config.stages[name])
        settings.pop("enabled", None)
        optional = settings.pop("optional", None)
        stages.append(stage_class(name)(weights=all_weights, offline=off, optional=optional, **settings))
    if not stages:
        raise ConfigError("no stage is enabled")
    return Pipeline(stages, {"profile": config.profile, **dict(provenance or {})})


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML config file as a dict; errors name the file."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from None


def make_config(profile: str | None = None, *, config_file: str | os.PathLike[str] | None = None,
                overrides: Sequence[str] = (), skip: Sequence[str] = (), only: Sequence[str] = ()) -> PerceptionConfig:
    """Profile (argument, else the file's ``profile``, else :data:`DEFAULT_PROFILE`) + TOML file + ``--set``
    overrides + ``--skip`` / ``--stage`` choices, applied in that order."""
    data = read_toml(config_file) if config_file is not None else {}
    chosen = profile or data.get("profile") or DEFAULT_PROFILE
    cfg = PerceptionConfig.for_profile(str(chosen))
    cfg.apply_mapping({k: v for k, v in data.items() if k != "profile"}, f"{config_file}: " if config_file else "")
    for o in overrides:
        cfg.apply_override(o)
    if only:
        for name in STAGE_ORDER:
            cfg.stages.setdefault(name, {})["enabled"] = False
        for name in only:
            cfg.enable(name, True)
    for name in skip:
        cfg.enable(name, False)
    return cfg


def pipeline_for(profile: str = DEFAULT_PROFILE, *, config_file: str | os.PathLike[str] | None = None,
                 overrides: Sequence[str] = (), weights: Mapping[str, str] | None = None,
                 offline: bool | None = None) -> Pipeline:
    """Convenience: profile + optional TOML file + ``STAGE.KEY=VALUE`` overrides -> (unloaded) pipeline."""
    cfg = make_config(profile, config_file=config_file, overrides=overrides)
    return build_pipeline(cfg, weights=weights, offline=offline)
