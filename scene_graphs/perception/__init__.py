"""Perception: scene graphs from raw images with vision models, one module per annotator.

============  ===================  ===================================================================
stage         module               fills
============  ===================  ===================================================================
detect        :mod:`.detect`       objects (Ultralytics YOLO; optional YOLO-World / YOLOE)
segment       :mod:`.segment`      masks (YOLO11n-seg matched to the boxes; SAM box prompts)
depth         :mod:`.depth`        depth map + ``Object.depth`` (Depth Anything V2 / MiDaS, transformers)
color         :mod:`.attributes`   colour attributes from pixels (CIELAB, no model)
clip_attrs    :mod:`.attributes`   material / size / state / pattern attributes (OpenCLIP zero-shot)
relations     :mod:`.relations`    geometric and depth relations by written rules
ocr           :mod:`.ocr`          text regions (RapidOCR; PaddleOCR) attached to objects
============  ===================  ===================================================================

Weights are found by :func:`.weights.resolve` (one resolver: explicit path, ``$MMGEN_WEIGHTS_DIR``,
the user cache, the library's own download). Profiles and configuration: :mod:`.profiles`.
Importing this package does not import torch or any vision library.
"""

from .base import Annotator, AnnotatorError, MissingDependencyError, resolve_device
from .images import DEFAULT_MAX_PIXELS, ImageError, ImageItem, find_images, load_image
from .pipeline import ImageFailure, Pipeline, annotate_paths
from .profiles import PROFILES, STAGE_ORDER, ConfigError, PerceptionConfig, build_pipeline, make_config
from .weights import (
    CATALOG,
    MissingWeightsError,
    ResolvedWeights,
    WeightFile,
    WeightsError,
    WeightsMismatchError,
    WeightSpec,
    resolve,
)

__all__ = [
    "CATALOG", "DEFAULT_MAX_PIXELS", "PROFILES", "STAGE_ORDER", "Annotator", "AnnotatorError", "ConfigError",
    "ImageError", "ImageFailure", "ImageItem", "MissingDependencyError", "MissingWeightsError", "PerceptionConfig",
    "Pipeline", "ResolvedWeights", "WeightFile", "WeightSpec", "WeightsError", "WeightsMismatchError",
    "annotate_paths", "build_pipeline", "find_images", "load_image", "make_config", "resolve", "resolve_device",
]
