"""Export options shared by every format, and the errors export raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PLACEMENTS = ("start", "end", "random")
"""Where the image tokens (or image parts) go in the first human turn; ``random`` picks start or end
per record from a hash of (placement seed, record id), so it never changes between runs."""
OPTION_STYLES = ("letter", "number", "paren")
"""How multiple-choice options are labelled: ``A. red``, ``1. red`` or ``(A) red``."""
ANSWER_STYLES = ("letter", "letter_text", "text")
"""How a multiple-choice answer is written: the label (``B``), label and text (``B. red``), or the text."""
HF_IMAGE_MODES = ("embed", "path")
"""``embed``: image bytes inside the parquet files; ``path``: absolute paths below the image root."""
SPLITS = ("train", "val")
STYLES = ("plain", "think")
"""How answers are written: ``plain``, or ``think``: ``<think>\n<rationale>\n</think>\n\n<answer>``."""
IMAGE_URL_MODES = ("path", "data")
"""openai: ``path`` writes the image path as the URL (give ``--path-prefix https://host/images/`` for a real
URL); ``data`` embeds the image as a base64 ``data:`` URL (needs the image root)."""


class ExportError(ValueError):
    """Export cannot go on: a bad record, option or missing dependency (one clear line)."""


@dataclass(frozen=True)
class ExportOptions:
    """Everything that changes what export writes (stored in the output's ``export.json``)."""

    image_root: Path | None = None
    """Folder the QA records' image paths are relative to (the annotate/import input folder). When
    given, export checks that every image exists; the ``hf`` format needs it to read or locate images."""
    path_prefix: str = ""
    """Prepended to every written image path (e.g. ``images/`` when training reads from a parent folder)."""
    jsonl: bool = False
    """JSON lines instead of one JSON list (JSON-file formats only)."""
    placement: str = "start"
    placement_seed: int = 0
    option_style: str = "letter"
    answer_style: str = "letter"
    mc_instruction: bool = True
    """Add a line telling the model how to answer a multiple-choice question."""
    rationale: bool = False
    """Answers become ``<rationale>\\nAnswer: <answer>`` (the program's reasoning, then the answer)."""
    system_prompt: str | None = None
    val_fraction: float = 0.0
    """Share of *images* whose records go to the ``val`` split (decided by a hash of the image id)."""
    split_seed: int = 0
    """Salt of the split hash: another seed gives another (equally image-disjoint) split."""
    hf_images: str = "embed"
    check_images: bool = True
    """With ``image_root``: fail on a record whose image file is missing."""
    target: str | None = None
    """The trainer/model family the files are for (:mod:`mmgen.export.targets`): it fixes the format,
    image-token labels, box syntax and path style; None for the plain format."""
    style: str = "plain"
    merge_per_image: bool = False
    """One conversation per image (LLaVA-665k layout): the single-image records of an image become the
    turns of one record, in a deterministic order (a hash of each record id)."""
    image_urls: str = "path"
    max_pixels: int | None = None
    """qwen2.5-vl: the processor's ``max_pixels`` the pixel boxes are computed for (None: 12845056)."""

    def __post_init__(self) -> None:
        for name, value, allowed in (("placement", self.placement, PLACEMENTS),
                                     ("option_style", self.option_style, OPTION_STYLES),
                                     ("answer_style", self.answer_style, ANSWER_STYLES),
                                     ("hf_images", self.hf_images, HF_IMAGE_MODES),
                                     ("style", self.style, STYLES), ("image_urls", self.image_urls, IMAGE_URL_MODES)):
            if value not in allowed:
                raise ExportError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ExportError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_pixels is not None and self.max_pixels < 56 * 56:
            raise ExportError(f"max_pixels must be at least {56 * 56}, got {self.max_pixels}")
        if self.style == "think" and self.rationale:
            raise ExportError("rationale and the think style both write the rationale: choose one")
        if self.system_prompt is not None and not self.system_prompt.strip():
            raise ExportError("system_prompt is empty")
        if self.image_root is not None:
            object.__setattr__(self, "image_root", Path(self.image_root))

    @property
    def splits(self) -> tuple[str, ...]:
        return SPLITS if self.val_fraction > 0 else SPLITS[:1]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_root"] = str(self.image_root.resolve()) if self.image_root is not None else None
        return d
