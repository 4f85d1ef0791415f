"""The Program API: how a QA program is written, registered, seeded, balanced and verified.

A program turns a scene graph into question-answer records in three pure steps::

    plans   = program.candidates(view)           # every valid question, as plain JSON data
    value   = program.solve(view, plan)          # the answer, derived from the graph alone
    qa      = program.realize(view, plan, value, rng, form)   # words, options, rationale

``solve`` never trusts the plan for the answer (a plan says *what* is asked, never the answer), so
``mmgen verify`` can re-run it on a stored record and catch any mismatch. A program that finds the
answers while choosing its plans implements ``solved_candidates`` (``(plan, answer)`` pairs) instead
of ``candidates``; ``solve`` stays the reference, and the two must agree.

Work is shared through the view: :meth:`GraphView.memo` caches whatever a family derives from the
graph (relation index, referring expressions, decoded masks...) once per image, and
:meth:`Program.plans` caches each program's solved candidates per view, so a program consulted by
another (conversations) costs nothing twice.

Rules every program gets from this module (write new rules here, not in programs):

* **Seeding**: one ``numpy.random.Generator`` per (global seed, image ids, program id), a PCG64 seeded
  with a sha256 digest, so output never depends on worker count, shard order or ``PYTHONHASHSEED``.
* **Answer balancing** (per image, like CLEVR's rejection sampling but deterministic): plans are grouped
  by answer; an answer value is drawn uniformly among the values present, then a plan with that value.
  So a count program does not keep asking about the most frequent count. Yes/no programs are
  balanced in pairs: an image gives as many "yes" as "no" records (one more, from a fair coin, for
  an odd ``max_per_image``) and none when it offers only one answer, so a run is balanced for any
  ``max_per_image`` while each image is still decided by its own generator. Then a written-down rejection rule for
  answers that are common everywhere (CLEVR-style, but decided by the per-image generator, so it is
  deterministic): a drawn plan is kept with probability ``Program.answer_weight(value)`` (1 by default;
  counting keeps "1" with 0.35 and "2" with 0.7), otherwise its answer value is dropped for this image
  and another is drawn. Run-level capping is curation's job.
* **Forms**: each plan is realized free-form or multiple-choice (``ProgramConfig.mc_ratio``). Options
  come from ``distractors`` (same kind as the answer, false for this graph), ``num_options`` per
  program: ``num_options - 1`` drawn uniformly, then all options (answer included) shuffled, so no
  canonical order of the distractors survives. A program whose answers are unevenly spread over its
  values (colours, counts, predicates) sets ``answer_prior``: its distractors are then drawn from a
  pool of false values weighted by its *answer prior* (``data/answer_prior.json``, static data built
  by ``benchmarks/build_answer_prior.py``), so that how often a value is the answer when offered,
  which a text-only solver can learn, is about the same for every value.
* **Perception uncertainty**: objects scoring below ``min_score`` do not exist for programs; labels
  with any object in the uncertain band ``[min_score, confident_score)`` are not counted or asked about
  for existence (the program abstains and the abstention is counted).
* **Score calibration**: both thresholds are on our own detector's scale. Scores from another source
  (ProVision's open-vocabulary detector runs low) are compared with the thresholds mapped back through
  that source's curve in ``data/calibration.json`` (:func:`score_source`, :func:`raw_thresholds`);
  :class:`GraphView` applies it, so every program sees the calibrated thresholds as ``view.config``.
* **Evidence of absence**: "no", "0", "lacks", "not all contain" are said of a label only when
  :meth:`GraphView.confirms_absent` (the annotator searched for it and saw nothing, not even faintly);
  otherwise the program abstains and counts it ("no evidence of absence"). Counts are not given for a
  label with faint unreported candidates (``SceneGraph.faint_count``: a crowd may hold more).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import orjson
from numpy.random.bit_generator import ISeedSequence

from scene_graphs.model import Object, SceneGraph

from .scenes import is_object_label, plausible_relation

FREE_FORM = "free_form"
MULTIPLE_CHOICE = "multiple_choice"
FORMS = (FREE_FORM, MULTIPLE_CHOICE)
YES_NO = "yes/no"
"""The answer type whose records are balanced in pairs (see :meth:`Program.select_solved`)."""

Plan = dict[str, Any]
"""A question plan: JSON-serializable, no answer inside, enough to solve and realize."""


class ProgramError(RuntimeError):
    """A program broke one of its own guarantees (a bug in the program, never bad input)."""


@dataclass(frozen=True)
class ProgramConfig:
    """Knobs shared by all programs. Part of a run's manifest: changing one changes the output."""

    seed: int = 0
    max_per_image: int = 2
    """Questions per program per image (per image set for multi-image programs)."""
    mc_ratio: float = 0.5
    """Share of records realized as multiple choice."""
    min_score: float = 0.2
    """Objects (and text regions) below this score are ignored by every program."""
    confident_score: float = 0.5
    """Objects in [min_score, confident_score) are uncertain: their labels are not counted or asked about."""
    min_depth_gap: float = 0.1
    """Depth comparisons need this relative gap between the two values (share of the map's range)."""
    min_box_area: float = 0.0005
    """Objects smaller than this share of the image are too small to ask about by position."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------- calibration
CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.json"
OWN_ANNOTATOR = "scene_graphs.perception"
"""The source whose scale the thresholds are written in (identity curve)."""

Knots = tuple[tuple[float, float], ...]


def score_source(provenance: Mapping[str, Any] | None) -> str:
    """The annotation source of a graph's object scores, as ``data/calibration.json`` names it:
    :data:`OWN_ANNOTATOR` when one of our annotator's stages filled the objects, ``import:<format>``
    for imported objects, else the provenance's ``annotator`` (``""`` when there is none)."""
    prov = provenance if isinstance(provenance, Mapping) else {}
    stages = prov.get("stages")
    if isinstance(stages, Mapping) and any(isinstance(s, Mapping) and "objects" in (s.get("fills") or ())
                                           for s in stages.values()):
        return OWN_ANNOTATOR
    imported = prov.get("import")
    if isinstance(imported, Mapping) and isinstance(imported.get("format"), str):
        return f"import:{imported['format']}"
    annotator = prov.get("annotator")
    return annotator if isinstance(annotator, str) else ""


@lru_cache(maxsize=1)
def calibration_table() -> Mapping[str, Knots]:
    """Source -> knots ``((raw, calibrated), ...)`` of ``data/calibration.json`` (checked: from (0, 0)
    to (1, 1), both coordinates strictly increasing)."""
    data = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))
    table: dict[str, Knots] = {}
    for source, entry in sorted(data["sources"].items()):
        knots = tuple((float(r), float(c)) for r, c in entry["knots"])
        increasing = all(r0 < r1 and c0 < c1 for (r0, c0), (r1, c1) in zip(knots, knots[1:]))
        if len(knots) < 2 or knots[0] != (0.0, 0.0) or knots[-1] != (1.0, 1.0) or not increasing:
            raise ValueError(f"{CALIBRATION_FILE}: knots of {source!r} must run from [0, 0] to [1, 1], "
                             f"strictly increasing in both coordinates; got {entry['knots']!r}")
        table[source] = knots
    return MappingProxyType(table)


def _raw_score(knots: Knots, calibrated: float) -> float:
    """The raw score that the curve through ``knots`` maps to ``calibrated`` (its inverse)."""
    for (r0, c0), (r1, c1) in zip(knots, knots[1:]):
        if calibrated == c0:
            return r0
        if calibrated <= c1:
            return r1 if calibrated == c1 else r0 + (r1 - r0) * (calibrated - c0) / (c1 - c0)
    return knots[-1][0]


@lru_cache(maxsize=1024)
def raw_thresholds(source: str, min_score: float, confident_score: float) -> tuple[float, float]:
    """``(min_score, confident_score)`` on the raw scale of ``source`` (unchanged for a source that
    ``data/calibration.json`` does not list, such as our own annotator)."""
    knots = calibration_table().get(source)
    if knots is None:
        return min_score, confident_score
    return _raw_score(knots, min_score), _raw_score(knots, confident_score)


@lru_cache(maxsize=1024)
def _config_for(config: ProgramConfig, source: str) -> ProgramConfig:
    lo, hi = raw_thresholds(source, config.min_score, config.confident_score)
    if (lo, hi) == (config.min_score, config.confident_score):
        return config
    return replace(config, min_score=lo, confident_score=hi)


def calibrated_config(config: ProgramConfig, graph: SceneGraph) -> ProgramConfig:
    """``config`` with its thresholds on the raw scale of ``graph``'s score source."""
    return _config_for(config, score_source(graph.provenance))


@dataclass(frozen=True)
class Template:
    """One phrasing of a question. ``id`` is stable; ``text`` uses ``str.format`` fields from the plan's
    rendering context (``{obj}``, ``{label}``, ``{labels}`` ...)."""

    id: str
    text: str


@dataclass(frozen=True)
class QA:
    """One generated question-answer record (the unit every later stage reads)."""

    id: str
    program: str
    family: str
    template: str
    question_type: str
    answer_type: str
    images: tuple[str, ...]
    question: str
    answer: str
    options: tuple[str, ...]
    answer_index: int | None
    rationale: str
    plan: Plan
    value: Any
    provenance: Mapping[str, Any]
    seed: int
    image_paths: tuple[str, ...] = ()
    """Paths of the images (as stored in their scene graphs, relative to the input root), in
    ``images`` order: what export writes as ``image``."""
    turns: tuple[tuple[str, str], ...] = ()
    """Multi-turn records (conversations): every (question, answer) pair; the first is also
    ``question`` / ``answer``. Empty for single-turn records."""
    extensions: Mapping[str, Any] = field(default_factory=dict)
    """What later stages added, by key (``evolved`` from evolve, ``curation`` from curate...): kept
    through every read and write, written as top-level keys after the generated fields
    (:mod:`programs.schema`)."""

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id, "program": self.program, "family": self.family, "template": self.template,
            "question_type": self.question_type, "answer_type": self.answer_type, "images": list(self.images),
            "question": self.question, "answer": self.answer, "options": list(self.options),
            "answer_index": self.answer_index, "rationale": self.rationale, "plan": self.plan,
            "value": self.value, "provenance": dict(self.provenance), "seed": self.seed,
            "image_paths": list(self.image_paths), "turns": [list(t) for t in self.turns],
        }
        for key, value in self.extensions.items():
            d.setdefault(key, value)  # a generated field always wins
        return d

    def generated(self) -> QA:
        """This record without extensions: what its program made (what ``mmgen verify`` regenerates)."""
        from dataclasses import replace

        return replace(self, extensions={}) if self.extensions else self

    def _repr_html_(self) -> str:
        from .display import qa_html  # Jupyter display

        return qa_html(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QA:
        """A record read back (validated by :func:`programs.schema.check_qa`; raises
        :class:`~scene_graphs.model.ValidationError` naming the field); unknown keys become ``extensions``."""
        from .schema import QA_KEYS, check_qa

        check_qa(d)
        return cls(d["id"], d["program"], d.get("family", ""), d["template"], d["question_type"], d["answer_type"],
                   tuple(d["images"]), d["question"], d["answer"], tuple(d.get("options") or ()),
                   d.get("answer_index"), d.get("rationale", ""), d["plan"], d.get("value"),
                   d.get("provenance") or {}, d.get("seed", 0), tuple(d.get("image_paths") or ()),
                   tuple(tuple(t) for t in d.get("turns") or ()),
                   {k: v for k, v in d.items() if k not in QA_KEYS})


# --------------------------------------------------------------------------------------- seeding
def stable_int(text: str) -> int:
    """A 64-bit integer from a string, identical in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


class _DigestSeed(ISeedSequence):
    """Seed material read straight from a sha256 digest (extended by re-hashing when more is asked).

    numpy's ``SeedSequence`` would hash the (already uniform) digest again, which costs more than
    everything else a small program does; the digest is a fine seed for a bit generator as it is."""

    __slots__ = ("_digest",)

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        dt = np.dtype(dtype)
        need = n_words * dt.itemsize
        data = self._digest
        while len(data) < need:
            data += hashlib.sha256(data).digest()
        return np.frombuffer(data[:need], dtype=dt).copy()


def make_rng(seed: int, image_ids: Sequence[str], program_id: str) -> np.random.Generator:
    """The generator for one program on one image (or image set): a PCG64 seeded with the sha256 of
    (global seed, image ids, program id)."""
    text = f"{seed & 0xFFFFFFFF}|{'|'.join(image_ids)}|{program_id}"
    return np.random.Generator(np.random.PCG64(_DigestSeed(hashlib.sha256(text.encode("utf-8")).digest())))


def draw(rng: np.random.Generator, n: int) -> int:
    """A uniform index in ``range(n)`` (``rng.integers`` costs four times as much per call)."""
    return min(n - 1, int(rng.random() * n))


def sample_indices(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """``k`` distinct indices of ``range(n)`` drawn uniformly, in increasing order (partial Fisher-Yates)."""
    idx = list(range(n))
    for i in range(min(k, n)):
        j = i + draw(rng, n - i)
        idx[i], idx[j] = idx[j], idx[i]
    return sorted(idx[:k])


# --------------------------------------------------------------------------------------- answer prior
ANSWER_PRIOR_FILE = Path(__file__).parent / "data" / "answer_prior.json"
"""Per program, how often each answer value is the answer (built by ``benchmarks/build_answer_prior.py``)."""


@dataclass(frozen=True)
class AnswerPrior:
    """One program's answer prior: weight per answer key (its share of the program's answers) and
    ``floor``, the weight of a key never seen as an answer."""

    weights: Mapping[str, float]
    floor: float

    def weight(self, keys: Iterable[str]) -> float:
        """Product of the weights of ``keys`` (an option text's prior keys)."""
        w = 1.0
        get, floor = self.weights.get, self.floor
        for key in keys:
            w *= get(key, floor)
        return w


@lru_cache(maxsize=1)
def answer_priors() -> Mapping[str, AnswerPrior]:
    """Program id -> :class:`AnswerPrior` from ``data/answer_prior.json`` (static data: no run changes it,
    so options never depend on what else a run generated); empty when the file is absent."""
    if not ANSWER_PRIOR_FILE.exists():
        return MappingProxyType({})
    data = json.loads(ANSWER_PRIOR_FILE.read_text(encoding="utf-8"))
    out = {}
    for pid, entry in sorted(data["programs"].items()):
        weights = {str(k): float(v) for k, v in entry["weights"].items()}
        floor = float(entry["floor"])
        if floor <= 0 or any(v <= 0 for v in weights.values()):
            raise ValueError(f"{ANSWER_PRIOR_FILE}: weights of {pid!r} must be positive")
        out[pid] = AnswerPrior(MappingProxyType(weights), floor)
    return MappingProxyType(out)


# --------------------------------------------------------------------------------------- graph view
class GraphView:
    """A scene graph as programs see it: confident objects only, with cached groupings.

    Built once per graph and shared by all programs, so the work is done once per image. Everything
    derived from the graph is cached on the view: the groupings below (``cached_property``) and,
    through :meth:`memo`, whatever a family derives (relation index, referents, decoded masks,
    each program's solved candidates). :meth:`with_stats` gives a view that shares all of it but
    counts abstentions in its own tally.
    """

    __slots__ = ("__dict__", "__weakref__", "stats")

    def __init__(self, graph: SceneGraph, config: ProgramConfig, stats: Counter | None = None) -> None:
        self.graph = graph
        config = calibrated_config(config, graph)
        self.config = config
        """The run's config with the thresholds on this graph's raw score scale (:func:`calibrated_config`)."""
        self.stats: Counter = stats if stats is not None else Counter()
        """Counts abstentions and skips (``"<program>: <reason>"``) for the run summary."""
        self.objects: tuple[Object, ...] = tuple(o for o in graph.objects
                                                 if o.score >= config.min_score and is_object_label(o.label))
        """Objects at ``min_score`` or above whose label names a thing (never "game", "scene", "view")."""
        self.by_id: dict[str, Object] = {o.id: o for o in self.objects}
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """``build()`` computed once per view (and the views sharing its caches) and ``key``.

        Keys are tuples or strings naming what is cached (``("refer", object_id, allow_region)``);
        values must not be mutated by their users."""
        m = self._memo
        try:
            return m[key]
        except KeyError:
            value = m[key] = build()
            return value

    def with_stats(self, stats: Counter) -> GraphView:
        """The same view, sharing every cache (present and future), with its own abstention tally."""
        twin = object.__new__(GraphView)
        twin.__dict__ = self.__dict__  # one dict for both: a cache filled through either serves both
        twin.stats = stats
        return twin

    @property
    def image_id(self) -> str:
        return self.graph.image_id

    @property
    def width(self) -> int:
        return self.graph.width

    @property
    def height(self) -> int:
        return self.graph.height

    @cached_property
    def by_label(self) -> dict[str, tuple[Object, ...]]:
        groups: dict[str, list[Object]] = {}
        for o in self.objects:
            groups.setdefault(o.label, []).append(o)
        return {k: tuple(v) for k, v in sorted(groups.items())}

    @cached_property
    def uncertain_labels(self) -> frozenset[str]:
        """Labels with at least one object in the uncertain score band."""
        c = self.config.confident_score
        return frozenset(o.label for o in self.objects if o.score < c)

    @cached_property
    def countable_labels(self) -> tuple[str, ...]:
        """Labels whose every object is confidently detected: safe for counting and existence."""
        return tuple(lbl for lbl in self.by_label if lbl not in self.uncertain_labels)

    @cached_property
    def confident_objects(self) -> tuple[Object, ...]:
        """Objects scoring at least ``confident_score`` (the ones questions may name)."""
        c = self.config.confident_score
        return tuple(o for o in self.objects if o.score >= c)

    @cached_property
    def relations(self) -> tuple:
        """Relations between objects that survive ``min_score`` (and whose own score does too) and
        that the objects' kinds allow (``scenes.plausible_relation``: no "glove wearing human");
        each one dropped for its kinds is counted in :attr:`stats`."""
        from .predicates import group

        ids = self.by_id
        m = self.config.min_score
        kept = []
        for r in self.graph.relations:
            if r.subject not in ids or r.object not in ids or r.score < m:
                continue
            if not plausible_relation(ids[r.subject].label, group(r.predicate), ids[r.object].label):
                self.stats["relations: implausible for the kinds of subject and object"] += 1
                continue
            kept.append(r)
        return tuple(kept)

    @cached_property
    def text(self) -> tuple:
        m = self.config.min_score
        return tuple(t for t in self.graph.text if t.score >= m)

    @cached_property
    def graph_labels(self) -> frozenset[str]:
        """Every label of the graph, at any score (what an "absent" answer must rule out)."""
        return frozenset(o.label for o in self.graph.objects)

    def confirms_absent(self, label: str) -> bool:
        """Whether the graph holds evidence that no ``label`` is in the image: an annotator searched for it
        and saw no candidate, not even a faint one (``SceneGraph.confirms_absent``). Graphs without
        evidence (imports) never confirm an absence: "no", "0" and "lacks" are then not said."""
        key = ("confirms_absent", label)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self.graph.confirms_absent(label)
        return hit

    def abstain(self, program_id: str, reason: str, n: int = 1) -> None:
        """Record that a program declined to ask something (e.g. an uncertain category)."""
        self.stats[f"abstained {program_id}: {reason}"] += n

    def is_unique_label(self, label: str) -> bool:
        return len(self.by_label.get(label, ())) == 1

    def area_share(self, obj: Object) -> float:
        return obj.box.area / float(self.width * self.height)


# --------------------------------------------------------------------------------------- programs
@dataclass
class Realized:
    """What ``realize`` returns; the base class wraps it into a :class:`QA`."""

    template: str
    question: str
    answer: str
    rationale: str
    options: list[str] = field(default_factory=list)
    """Distractors (false answers of the same kind) for multiple choice, without the answer."""
    objects: list[str] = field(default_factory=list)
    """Ids of objects the answer or rationale relies on beyond those named in the plan (provenance)."""
    turns: list[tuple[str, str]] = field(default_factory=list)
    """For multi-turn records only: all (question, answer) turns, the first equal to question/answer."""


class Program:
    """Base class: subclass, set the class attributes, implement ``candidates``, ``solve``, ``realize``
    (and ``distractors`` for multiple choice), decorate with :func:`register`."""

    id: ClassVar[str] = ""
    family: ClassVar[str] = ""
    requires: ClassVar[frozenset[str]] = frozenset({"objects"})
    answer_type: ClassVar[str] = ""
    templates: ClassVar[tuple[Template, ...]] = ()
    num_options: ClassVar[int] = 4
    """Options in the multiple-choice form (answer included); 0 means free-form only."""
    answer_prior: ClassVar[bool] = False
    """Whether distractors are drawn from ``distractors`` (a pool of false values) by this program's answer
    prior (``data/answer_prior.json``) instead of uniformly: see :meth:`pick_distractors`."""
    multi_image: ClassVar[bool] = False

    # -- to implement ----------------------------------------------------------------------
    def candidates(self, view: GraphView) -> list[Plan]:
        """Every valid question plan for this graph, in a deterministic order.

        A program implements this, or :meth:`solved_candidates` when it finds the answers while
        choosing its plans (this default then lists the plans it returns)."""
        if type(self).solved_candidates is Program.solved_candidates:
            raise NotImplementedError
        return [plan for plan, _ in self.solved_candidates(view)]

    def solve(self, view: GraphView, plan: Plan) -> Any:
        """The answer value (JSON data) for ``plan``, computed from the graph alone."""
        raise NotImplementedError

    def realize(self, view: GraphView, plan: Plan, value: Any, rng: np.random.Generator) -> Realized:
        """Question text (template chosen with ``rng``), answer text, rationale and distractors."""
        raise NotImplementedError

    # -- provided --------------------------------------------------------------------------
    def solved_candidates(self, view: Any) -> list[tuple[Plan, Any]]:
        """``(plan, answer)`` for every candidate plan with an answer, in candidate order.

        Must equal ``[(p, solve(view, p)) for p in candidates(view)]`` without the ``None`` answers;
        a program overriding it (to avoid solving twice) keeps ``solve`` as the reference."""
        out = []
        for plan in self.candidates(view):
            value = self.solve(view, plan)
            if value is not None:
                out.append((plan, value))
        return out

    def plans(self, view: GraphView) -> list[tuple[Plan, Any]]:
        """:meth:`solved_candidates`, computed once per view (conversations reuse it). Abstentions
        counted while computing it are counted again in ``view.stats`` on every call, as a fresh
        computation would."""
        key = ("plans", self.id)
        hit = view._memo.get(key)
        if hit is None:
            saved, tally = view.stats, Counter()
            view.stats = tally
            try:
                pairs = tuple(self.solved_candidates(view))
            finally:
                view.stats = saved
            hit = view._memo[key] = (pairs, tally)
        if hit[1]:
            view.stats.update(hit[1])
        return list(hit[0])

    def applicable(self, graph: SceneGraph) -> bool:
        return graph.has(*self.requires)

    def answer_key(self, value: Any) -> str:
        """What answer balancing groups by (the value, as canonical JSON)."""
        if type(value) is str:
            return orjson.dumps(value).decode()
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    def answer_weight(self, value: Any) -> float:
        """Probability of keeping a drawn plan with this answer (the rejection rule; 1 keeps all)."""
        return 1.0

    def prior_keys(self, text: str) -> tuple[str, ...]:
        """What the answer prior counts in an option text (the text itself; a listing its items)."""
        return (text,)

    def same_option(self, a: str, b: str) -> bool:
        """Whether two option texts may say the same thing (never offered together, nor with the answer)."""
        return a == b

    def pick_distractors(self, rng: np.random.Generator, answer: str, pool: Sequence[str], n: int) -> list[str] | None:
        """``n`` distractors from ``pool`` (false values, in a deterministic order), or ``None`` when it
        holds too few (or, with an answer prior, when the set drawn is refused: the record is then free-form).

        Without an answer prior they are drawn uniformly. With one (:attr:`answer_prior`), each is drawn
        independently by the answer share of its :meth:`prior_keys` (:meth:`AnswerPrior.weight`) and a
        set that repeats a value, or holds two that :meth:`same_option` joins, is refused: then how often
        a value is right when offered, which a text-only solver learns, is the same for every value, at
        the price of fewer multiple-choice records where the answers are concentrated on few values."""
        prior = answer_priors().get(self.id) if self.answer_prior else None
        if prior is None:
            distractors = list(dict.fromkeys(o for o in pool if o != answer))
            if len(distractors) < n:
                return None
            return [distractors[i] for i in sample_indices(rng, len(distractors), n)]
        # exact, by rejection: each distractor is drawn independently from the record's vocabulary (its
        # pool plus the answer) by weight, scaled by the largest pool any member could leave; a draw of
        # the answer's own weight (beyond the rarest member's), of a value drawn before or of one that may
        # say the same thing refuses the set (the record is then free-form). A set S is then offered with
        # answer a with probability share(a) * prod(w(S - a)) / scale ** n: with the weights equal to
        # the answer shares, the same for every member of S, so none of them is more often right.
        cands = list(dict.fromkeys(o for o in pool if o != answer))
        if len(cands) < n:
            return None
        weights = [prior.weight(self.prior_keys(o)) for o in cands]
        answer_weight = prior.weight(self.prior_keys(answer))
        scale = sum(weights) + answer_weight - min(answer_weight, *weights)
        out: list[str] = []
        for _ in range(n):
            u, i = rng.random() * scale, 0
            while i < len(weights) and u >= weights[i]:
                u -= weights[i]
                i += 1
            if i == len(weights):
                return None
            pick = cands[i]
            if self.same_option(pick, answer) or any(self.same_option(pick, o) for o in out):
                return None
            out.append(pick)
        return out

    def pick_template(self, rng: np.random.Generator, ids: Iterable[str] | None = None) -> Template:
        """A template drawn uniformly (optionally among ``ids``)."""
        if ids is None:
            pool = self.templates
        else:
            wanted = set(ids)
            pool = tuple(t for t in self.templates if t.id in wanted)
        if not pool:
            raise ProgramError(f"{self.id}: no template to choose from")
        return pool[draw(rng, len(pool))]

    def referenced_objects(self, plan: Plan) -> list[str]:
        """Object ids a plan uses (for provenance); plans name them under keys ending in ``id``/``ids``."""
        out: list[str] = []
        for k, v in plan.items():
            if k.endswith("ids"):
                if k == "ids" or k.endswith("_ids"):
                    out.extend(str(x) for x in v)
            elif k.endswith("id") and (k == "id" or k.endswith("_id")):
                out.append(str(v))
        return out

    def select(self, view: GraphView, plans: list[Plan], rng: np.random.Generator, k: int) -> list[tuple[Plan, Any]]:
        """Up to ``k`` plans with their answers, balanced by answer value (see module docstring)."""
        solved = [(plan, value) for plan in plans if (value := self.solve(view, plan)) is not None]
        return self.select_solved(solved, rng, k)

    def select_solved(self, solved: Sequence[tuple[Plan, Any]], rng: np.random.Generator,
                      k: int) -> list[tuple[Plan, Any]]:
        """:meth:`select` for plans already solved (``(plan, answer)`` pairs, no ``None`` answers)."""
        groups: dict[str, list[tuple[Plan, Any]]] = {}
        key = self.answer_key
        for pair in solved:
            groups.setdefault(key(pair[1]), []).append(pair)
        if self.answer_type == YES_NO:
            return self._select_pairs(groups, rng, k)
        chosen: list[tuple[Plan, Any]] = []
        keys = sorted(groups)
        while keys and len(chosen) < k:
            key_ = keys[draw(rng, len(keys))]
            pool = groups[key_]
            plan, value = pool.pop(draw(rng, len(pool)))
            weight = self.answer_weight(value)
            if weight < 1.0 and rng.random() >= weight:
                keys.remove(key_)  # rejected: this answer is not asked about in this image
                continue
            chosen.append((plan, value))
            if not pool:
                keys.remove(key_)
        return chosen

    @staticmethod
    def _select_pairs(groups: dict[str, list[tuple[Plan, Any]]], rng: np.random.Generator,
                      k: int) -> list[tuple[Plan, Any]]:
        """Yes/no selection: as many "yes" as "no" records per image (``k // 2`` of each at most, fewer
        when one side runs out), and for an odd ``k`` one more from a side drawn by a fair coin. An image
        offering only one answer gives none, so every run is balanced whatever ``k`` and the images."""
        if len(groups) != 2:
            return []
        sides = [list(groups[key_]) for key_ in sorted(groups)]
        n = min(len(sides[0]), len(sides[1]), k // 2)
        chosen: list[tuple[Plan, Any]] = []
        for _ in range(n):
            for side in sides:
                chosen.append(side.pop(draw(rng, len(side))))
        if k % 2 and len(chosen) < k:
            side = sides[draw(rng, 2)]
            if side:
                chosen.append(side.pop(draw(rng, len(side))))
        # the order of records must not tell the answer either
        for i in range(len(chosen) - 1, 0, -1):
            j = draw(rng, i + 1)
            chosen[i], chosen[j] = chosen[j], chosen[i]
        return chosen

    def subject(self, views: Sequence[GraphView]) -> Any:
        """What ``candidates``/``solve``/``realize`` receive: the one view, or the tuple of views of an
        image set for multi-image programs (images are "Image 1", "Image 2", ... in this order)."""
        return tuple(views) if self.multi_image else views[0]

    def generate(self, views: Sequence[GraphView], config: ProgramConfig) -> list[QA]:
        """All records of this program for one image (or image set)."""
        subject = self.subject(views)
        solved = self.solved_candidates(subject) if self.multi_image else self.plans(subject)
        if not solved:
            return []
        image_ids = tuple(v.image_id for v in views)
        rng = make_rng(config.seed, image_ids, self.id)
        out: list[QA] = []
        for index, (plan, value) in enumerate(self.select_solved(solved, rng, config.max_per_image)):
            out.append(self._make_qa(views, plan, value, rng, config, index))
        return out

    def _make_qa(self, views: Sequence[GraphView], plan: Plan, value: Any, rng: np.random.Generator,
                 config: ProgramConfig, index: int) -> QA:
        r = self.realize(self.subject(views), plan, value, rng)
        form = FREE_FORM
        options: tuple[str, ...] = ()
        answer_index = None
        if self.num_options and rng.random() < config.mc_ratio:
            n = self.num_options
            picked = self.pick_distractors(rng, r.answer, r.options, n - 1)
            if picked is not None:
                # distractors drawn (uniformly or by the answer prior), then every option shuffled: neither
                # the slot nor the order of the options (which distractor lists keep canonical) can point
                # at the answer
                opts = [r.answer] + picked
                for i in range(n - 1, 0, -1):  # Fisher-Yates
                    j = draw(rng, i + 1)
                    opts[i], opts[j] = opts[j], opts[i]
                options = tuple(opts)
                answer_index = opts.index(r.answer)
                form = MULTIPLE_CHOICE
        image_ids = tuple([v.image_id for v in views])
        objects = self.referenced_objects(plan)
        if r.objects:
            objects = list(dict.fromkeys(objects + r.objects))
        elif len(objects) > 1:
            objects = list(dict.fromkeys(objects))
        return QA(
            id=f"{'+'.join(image_ids)}:{self.id}:{index}", program=self.id, family=self.family, template=r.template,
            question_type=form, answer_type=self.answer_type, images=image_ids, question=r.question,
            answer=r.answer, options=options, answer_index=answer_index, rationale=r.rationale, plan=plan,
            value=value, provenance={"objects": objects}, seed=config.seed,
            image_paths=tuple([v.graph.path for v in views]), turns=tuple([(q, a) for q, a in r.turns]),
        )


# --------------------------------------------------------------------------------------- registry
REGISTRY: dict[str, type[Program]] = {}


def register(cls: type[Program]) -> type[Program]:
    """Class decorator adding a program to the registry; ids are global and never reused."""
    if not cls.id or not (cls.id.startswith("single.") or cls.id.startswith("multi.")):
        raise ProgramError(f"{cls.__name__}: id must start with 'single.' or 'multi.', got {cls.id!r}")
    if cls.id in REGISTRY and REGISTRY[cls.id] is not cls:
        raise ProgramError(f"program id {cls.id!r} registered twice ({REGISTRY[cls.id].__name__}, {cls.__name__})")
    if cls.multi_image != cls.id.startswith("multi."):
        raise ProgramError(f"{cls.id}: multi_image must match the id prefix")
    if not cls.family or not cls.answer_type or not cls.templates:
        raise ProgramError(f"{cls.id}: family, answer_type and templates are required")
    ids = [t.id for t in cls.templates]
    if len(set(ids)) != len(ids) or len({t.text for t in cls.templates}) != len(ids):
        raise ProgramError(f"{cls.id}: duplicated template id or text")
    REGISTRY[cls.id] = cls
    return cls


def load_all() -> dict[str, type[Program]]:
    """Import every program module (single and multi) and return the registry, sorted by id."""
    import importlib
    import pkgutil

    from . import multi, single

    for package in (single, multi):
        for m in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{package.__name__}.{m.name}")
    return dict(sorted(REGISTRY.items()))


def get_program(program_id: str) -> Program:
    programs = load_all()
    if program_id not in programs:
        raise KeyError(f"unknown program {program_id!r}")
    return programs[program_id]()


def single_programs(ids: Iterable[str] | None = None) -> list[Program]:
    """Instances of the registered single-image programs (all, or those whose id matches ``ids``)."""
    wanted = set(ids) if ids is not None else None
    return [cls() for pid, cls in load_all().items()
            if not cls.multi_image and (wanted is None or pid in wanted or cls.family in wanted)]


def run_single(graph: SceneGraph, config: ProgramConfig, programs: Sequence[Program],
               stats: Counter | None = None) -> list[QA]:
    """Every applicable program on one graph; skips and abstentions are counted in ``stats``."""
    stats = stats if stats is not None else Counter()
    view = GraphView(graph, config, stats)
    out: list[QA] = []
    for p in programs:
        if not p.applicable(graph):
            stats[f"skipped {p.id}: graph lacks " + ",".join(sorted(p.requires - graph.fields))] += 1
            continue
        out.extend(p.generate([view], config))
    return out
