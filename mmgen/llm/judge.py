"""An LLM judge: scores a QA record 1-10 against the written rubric of :data:`~mmgen.llm.prompts.JUDGE_RUBRIC`
(correct given the graph, clear, answerable from the image, not answerable without it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from scene_graphs.model import SceneGraph

from .client import LLMClient
from .prompts import JUDGE_SCHEMA, JUDGE_VERSION, GraphLimits, judge_messages


@dataclass(frozen=True)
class Verdict:
    """A score with its reason, or why there is none (``error``)."""

    score: int | None
    reason: str = ""
    error: str | None = None
    server_failed: bool = False
    """The request failed (not the record): curation keeps the record pending and stops non-zero."""

    def to_dict(self, model: str) -> dict[str, Any]:
        out: dict[str, Any] = {"score": self.score, "reason": self.reason, "model": model,
                               "prompt_version": JUDGE_VERSION}
        if self.error:
            out["error"] = self.error
        return out


class Judge:
    """Scores records with ``client``; graphs come from ``get_graph`` (image id -> graph or None)."""

    def __init__(self, client: LLMClient, get_graph: Callable[[str], SceneGraph | None], min_score: float = 0.2,
                 limits: GraphLimits | None = None, images: Any = None) -> None:
        self.client = client
        self.images = images
        """An :class:`~mmgen.llm.vision.ImageSource`: the judge sees the image(s) too (a VLM)."""
        self.get_graph = get_graph
        self.min_score = min_score
        self.limits = limits or GraphLimits()

    def __call__(self, rec: Mapping[str, Any]) -> Verdict:
        graphs = [self.get_graph(i) for i in rec.get("images") or ()]
        if not graphs or any(g is None for g in graphs):
            return Verdict(None, error=f"no scene graph for image(s) {list(rec.get('images') or ())}")
        messages = judge_messages(graphs, rec, self.min_score, self.limits)  # type: ignore[arg-type]
        if self.images is not None:
            from .vision import attach_images

            messages = attach_images(messages, self.images.parts(graphs))
        answer = self.client.ask(messages, JUDGE_SCHEMA, "judgement")
        if not answer.ok:
            return Verdict(None, error=answer.error, server_failed=answer.server_failed)
        data = answer.data or {}
        return Verdict(int(data["score"]), str(data.get("reason", "")).strip()[:500])
