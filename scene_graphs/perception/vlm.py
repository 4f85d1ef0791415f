"""Attributes and relations from a vision-language model behind any OpenAI-compatible server.

The ``vlm`` stage (vLLM, llama.cpp, Ollama or a hosted API; ``openai`` client from the ``mmgen[llm]``
extra) sends pixels as ``image_url`` content parts: JPEG data URLs made from the decoded (EXIF-turned)
image, scaled so the longest side is ``image_side`` pixels.

* **Attributes**, per object (the ``max_objects`` highest-scoring; 0 asks none): the crop of its box padded by
  ``padding`` of its size, with the question which word of each category in ``categories`` fits, from
  the graph's vocabulary (:data:`.attributes.CLIP_VOCABULARY`), as a JSON object
  ``{"color": "red" | null, ...}``.
* **Relations**, per candidate pair (the pairs of the relations already in the graph, best score first,
  then the nearest other pairs of any objects by box edge distance, ``max_pairs`` in all): the crop around both boxes
  with the subject's box drawn in red and the object's in blue, and the question which predicate of
  ``predicates`` (the geometry stage's vocabulary) holds, ``{"predicate": "on" | "none"}``.

Answers are parsed strictly: a word outside the vocabulary is dropped and counted (``out_of_vocabulary``);
an answer that is not a JSON object is asked again once and then counted (``malformed``) with nothing
added. A predicate the graph already has for the pair (from geometry) is counted as ``agreed`` and not added
twice. What is kept is marked ``source: "vlm"`` (attributes and relations) with score ``score``; the
counts go to ``provenance["stages"]["vlm"]["counts"]`` of each graph. A rerun replaces the earlier
``vlm`` attributes and relations and leaves the others alone.

A server that fails (connection refused, timeout, HTTP error) is never an answer. Loading probes
``/models`` and raises :class:`VlmServerError` (an :class:`~.base.AnnotatorError`) when the server cannot
be reached, so ``mmgen annotate`` exits non-zero before any image; a failure during an image raises it for
that image (the pipeline records the image as failed; nothing is written for it).

The stage is in the ``quality`` profile but off by default; turn it on with its server and model::

    mmgen annotate photos/ -o sg/ --profile quality --set vlm.enabled=true \\
        --set vlm.base_url=http://127.0.0.1:8000/v1 --set vlm.model=Qwen/Qwen2.5-VL-7B-Instruct

(``--stage vlm`` would run *only* this stage, which needs the objects of a detector.) ``api_key``
defaults to ``$OPENAI_API_KEY``, else ``none`` (local servers ignore it).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from ..model import Attribute, Box, Object, Relation, SceneGraph
from ..vocab import normalize
from .attributes import CLIP_VOCABULARY, NONE_WORDS, crop_box
from .base import Annotator, AnnotatorError, ServiceError, require
from .images import ImageItem
from .relations import PREDICATES, edge_distance

log = logging.getLogger("scene_graphs.perception.vlm")

LLM_EXTRA = "mmgen[llm]"
SUBJECT_COLOR = (255, 0, 0)
OBJECT_COLOR = (0, 0, 255)
NO_RELATION = "none"


class VlmServerError(ServiceError):
    """The server failed (unreachable, timeout, HTTP error): never an answer about the image."""

ATTRIBUTE_PROMPT = (
    "The image is a crop around one {label}. For each property below pick the one word that describes this "
    "{label}, or null when none fits or you cannot tell.\n{choices}\n"
    "Answer with a JSON object only, e.g. {example}.")
RELATION_PROMPT = (
    "The red box marks a {subject}; the blue box marks a {object}. Which one relation holds between them, "
    "read as \"the {subject} <relation> the {object}\"? Choose from: {choices}; or \"none\" when none holds.\n"
    "Answer with a JSON object only: {{\"predicate\": \"...\"}}.")


def vocabulary(categories: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Category -> the words the model may answer (the CLIP vocabulary without its "none" words)."""
    unknown = [c for c in categories if c not in CLIP_VOCABULARY]
    if unknown:
        raise AnnotatorError(f"stage 'vlm': unknown categories {unknown}; known: {list(CLIP_VOCABULARY)}")
    return {c: tuple(w for w in CLIP_VOCABULARY[c] if w not in NONE_WORDS) for c in categories}


def data_url(pixels: np.ndarray, side: int, quality: int = 90) -> str:
    """A JPEG data URL of RGB ``pixels`` scaled so the longest side is ``side`` pixels."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(pixels))
    scale = side / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if size != im.size:
        im = im.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """The JSON object a reply consists of (a Markdown code fence around it is allowed), else None."""
    if not text:
        return None
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@dataclass
class Counts:
    """What happened to the questions of one image."""

    requests: int = 0
    attributes: int = 0
    relations: int = 0
    out_of_vocabulary: int = 0
    malformed: int = 0
    agreed: int = 0
    dropped_words: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in ("requests", "attributes", "relations", "out_of_vocabulary", "malformed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dropped_words.extend(other.dropped_words)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "attributes": self.attributes, "relations": self.relations,
                "out_of_vocabulary": self.out_of_vocabulary, "malformed": self.malformed, "agreed": self.agreed,
                "dropped_words": sorted(set(self.dropped_words))[:20]}


class VlmAnnotator(Annotator):
    """Adds ``attributes`` and ``relations`` (``source: "vlm"``) asked of a VLM about each object and pair."""

    name = "vlm"
    fills = frozenset({"attributes", "relations"})
    needs = frozenset({"objects"})
    requires = {"openai": "openai"}
    distributions = ("openai",)
    defaults = {
        "base_url": "",
        "model": "",
        "api_key": "",
        "image_side": 768,
        "timeout": 60.0,
        "max_objects": 20,
        "max_pairs": 20,
        "temperature": 0.0,
        "seed": 0,
        "padding": 0.15,
        "categories": ("color", "material", "state"),
        "predicates": PREDICATES,
        "score": 0.9,
        "concurrency": 4,
        "json_mode": True,
    }

    def check_requires(self) -> None:
        require(self.name, self.requires, extra=LLM_EXTRA)

    def model_names(self) -> list[str]:
        return []  # the model lives behind the server, not in the weight catalog

    def _load(self, device: str) -> None:
        import openai

        for key in ("base_url", "model"):
            if not self.options[key]:
                raise AnnotatorError(f"stage 'vlm' needs {key}: --set vlm.{key}=... (see `mmgen annotate --help`)")
        for key in ("image_side", "max_objects", "max_pairs", "concurrency"):
            if self.options[key] < (1 if key in ("image_side", "concurrency") else 0):
                raise AnnotatorError(f"stage 'vlm': option {key!r} must be positive, got {self.options[key]!r}")
        unknown = sorted(set(self.options["predicates"]) - set(PREDICATES))
        if unknown:
            raise AnnotatorError(f"stage 'vlm': unknown predicates {unknown}; known: {list(PREDICATES)}")
        self.words = vocabulary(self.options["categories"])
        api_key = self.options["api_key"] or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = openai.OpenAI(base_url=self.options["base_url"], api_key=api_key,
                                    timeout=float(self.options["timeout"]), max_retries=0)
        try:
            self.client.models.list()
        except openai.NotFoundError:
            pass  # a server without /models can still answer chat completions
        except openai.OpenAIError as exc:
            raise VlmServerError(f"stage 'vlm': the server at {self.options['base_url']} cannot be reached "
                                 f"({type(exc).__name__}: {exc})") from None

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["options"].pop("api_key", None)  # never written into the graphs
        prov["models"] = [{"model": self.options["model"], "server": self.options["base_url"], "origin": "server"}]
        return prov

    # ------------------------------------------------------------------ asking
    def ask(self, text: str, url: str, where: str) -> tuple[dict[str, Any] | None, int]:
        """The parsed JSON object of the answer (asked again once when malformed; None then) and the
        number of requests; a server failure raises :class:`VlmServerError`."""
        import openai

        messages = [{"role": "user", "content": [{"type": "text", "text": text},
                                                 {"type": "image_url", "image_url": {"url": url}}]}]
        extra: dict[str, Any] = {"response_format": {"type": "json_object"}} if self.options["json_mode"] else {}
        for attempt in (1, 2):
            try:
                reply = self.client.chat.completions.create(
                    model=self.options["model"], messages=messages, temperature=float(self.options["temperature"]),
                    seed=int(self.options["seed"]), max_tokens=200, **extra)
            except openai.OpenAIError as exc:
                raise VlmServerError(f"stage 'vlm': the server at {self.options['base_url']} failed on {where} "
                                     f"({type(exc).__name__}: {exc})") from None
            content = reply.choices[0].message.content if reply.choices else None
            parsed = parse_json_object(content)
            if parsed is not None:
                return parsed, attempt
            log.debug("vlm: malformed answer for %s (attempt %d): %.200r", where, attempt, content)
        return None, 2

    def attributes_of(self, item: ImageItem, obj: Object) -> tuple[list[Attribute], Counts]:
        counts = Counts()
        x1, y1, x2, y2 = crop_box(obj.box, item.width, item.height, self.options["padding"], 16.0)
        choices = "\n".join(f"- {c}: one of {', '.join(words)}" for c, words in self.words.items())
        example = json.dumps({c: words[0] for c, words in self.words.items()})
        text = ATTRIBUTE_PROMPT.format(label=obj.label, choices=choices, example=example)
        answer, counts.requests = self.ask(text, data_url(item.pixels[y1:y2, x1:x2], self.options["image_side"]),
                                           f"{item.path} object {obj.id}")
        if answer is None:
            counts.malformed += 1
            return [], counts
        out = []
        for category, words in self.words.items():
            value = answer.get(category)
            if value is None or (isinstance(value, str) and normalize(value) in ("", NO_RELATION, "null")):
                continue
            word = normalize(value) if isinstance(value, str) else None
            if word in words:
                out.append(Attribute(word, category, float(self.options["score"]), source="vlm"))
            else:
                counts.out_of_vocabulary += 1
                counts.dropped_words.append(f"{category}={str(value)[:40]}")
        counts.attributes = len(out)
        return out, counts

    def relation_of(self, item: ImageItem, subject: Object, obj: Object) -> tuple[Relation | None, Counts]:
        from PIL import Image, ImageDraw

        counts = Counts()
        a, b = subject.box, obj.box
        union = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
        x1, y1, x2, y2 = crop_box(union, item.width, item.height, self.options["padding"], 16.0)
        im = Image.fromarray(np.ascontiguousarray(item.pixels[y1:y2, x1:x2]))
        draw = ImageDraw.Draw(im)
        width = max(2, round(max(im.size) / 150))
        for box, color in ((a, SUBJECT_COLOR), (b, OBJECT_COLOR)):
            draw.rectangle((box.x1 - x1, box.y1 - y1, box.x2 - x1, box.y2 - y1), outline=color, width=width)
        predicates = tuple(self.options["predicates"])
        text = RELATION_PROMPT.format(subject=subject.label, object=obj.label,
                                      choices=", ".join(f'"{p}"' for p in predicates))
        answer, counts.requests = self.ask(text, data_url(np.asarray(im), self.options["image_side"]),
                                           f"{item.path} pair {subject.id}->{obj.id}")
        if answer is None:
            counts.malformed += 1
            return None, counts
        value = answer.get("predicate")
        word = normalize(value) if isinstance(value, str) else None
        if value is None or word in (NO_RELATION, ""):
            return None, counts
        if word not in predicates:
            counts.out_of_vocabulary += 1
            counts.dropped_words.append(f"predicate={str(value)[:40]}")
            return None, counts
        counts.relations = 1
        return Relation(subject.id, word, obj.id, float(self.options["score"]), "vlm"), counts

    # ------------------------------------------------------------------ choosing what to ask
    def chosen_objects(self, graph: SceneGraph) -> list[Object]:
        ranked = sorted(graph.objects, key=lambda o: (-o.score, o.id))
        return ranked[: self.options["max_objects"]]

    def candidate_pairs(self, graph: SceneGraph, objects: Sequence[Object]) -> list[tuple[str, str]]:
        """The pairs of the graph's non-VLM relations (best first), then the nearest other pairs."""
        ids = {o.id for o in objects}
        pairs: list[tuple[str, str]] = []
        for r in sorted(graph.relations, key=lambda r: (-r.score, r.subject, r.object, r.predicate)):
            if r.source != "vlm" and r.subject in ids and r.object in ids and (r.subject, r.object) not in pairs:
                pairs.append((r.subject, r.object))
        near = sorted((edge_distance(a.box, b.box), a.id, b.id) for a in objects for b in objects if a.id != b.id)
        for _, s, o in near:
            if (s, o) not in pairs:
                pairs.append((s, o))
        return pairs[: self.options["max_pairs"]]

    # ------------------------------------------------------------------ the stage
    def annotate_one(self, item: ImageItem, graph: SceneGraph, pool: ThreadPoolExecutor) -> SceneGraph:
        objects = self.chosen_objects(graph)
        by_id = graph.objects_by_id
        pairs = self.candidate_pairs(graph, graph.objects)
        attr_jobs = [pool.submit(self.attributes_of, item, o) for o in objects]
        rel_jobs = [pool.submit(self.relation_of, item, by_id[s], by_id[o]) for s, o in pairs]
        counts = Counts()
        found: dict[str, list[Attribute]] = {}
        for o, job in zip(objects, attr_jobs):
            attrs, c = job.result()  # a VlmServerError fails this image
            found[o.id] = attrs
            counts.add(c)
        new_relations = []
        for job in rel_jobs:
            rel, c = job.result()
            counts.add(c)
            if rel is not None:
                new_relations.append(rel)
        kept_objects = []
        for o in graph.objects:
            own = tuple(a for a in o.attributes if a.source != "vlm")
            have = {(a.name, a.category) for a in own}
            extra = tuple(a for a in found.get(o.id, []) if (a.name, a.category) not in have)
            kept_objects.append(replace(o, attributes=own + extra))
        kept = tuple(r for r in graph.relations if r.source != "vlm")
        have = {(r.subject, r.predicate, r.object) for r in kept}
        fresh = tuple(r for r in new_relations if (r.subject, r.predicate, r.object) not in have)
        counts.agreed = len(new_relations) - len(fresh)  # the VLM named a relation the graph already has
        relations = kept + fresh
        if counts.out_of_vocabulary or counts.malformed:
            log.info("vlm: %s: %d answer(s) outside the vocabulary, %d malformed", item.path,
                     counts.out_of_vocabulary, counts.malformed)
        stamped = self.stamp(graph, objects=tuple(kept_objects), relations=relations)
        prov = dict(stamped.provenance)
        stages = dict(prov["stages"])
        stages[self.name] = {**stages[self.name], "counts": counts.to_dict()}
        prov["stages"] = stages
        return stamped.replace(provenance=prov)

    def process(self, batch: Sequence[ImageItem], graphs: Sequence[SceneGraph]) -> list[SceneGraph]:
        with ThreadPoolExecutor(max_workers=int(self.options["concurrency"])) as pool:
            return [self.annotate_one(item, graph, pool) for item, graph in zip(batch, graphs)]

