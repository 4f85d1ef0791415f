"""Hypothesis strategies that build valid scene graphs (and their parts) for property tests.

Everything here produces objects that pass the data model's validation, so a test can start from
"any valid graph" and check a property. Images are small by default (masks and depth maps are
real arrays) and strategies are built once and cached, which keeps each example in the millisecond
range.

Typical use::

    from hypothesis import given
    from tests import strategies as sgst

    @given(sgst.scene_graphs())
    def test_something(graph): ...

    @given(sgst.scene_graphs(min_objects=2, depth=True, relations=True))
    def test_needs_depth(graph): ...

Building blocks, each a strategy (or a function returning one):

* :func:`image_sizes` -> ``(width, height)``
* :func:`boxes(width, height)` -> :class:`Box` inside the image
* :func:`masks(width, height)` -> :class:`Mask` of that size
* :func:`attributes` -> :class:`Attribute`
* :func:`objects(width, height, ids)` -> one :class:`Object` per id
* :func:`relations(ids)` -> :class:`Relation` tuples between existing ids (distinct triples)
* :func:`text_regions(width, height, object_ids)` -> :class:`TextRegion` tuples
* :func:`depth_maps` -> :class:`DepthMap`
* :func:`scene_graphs` -> :class:`SceneGraph`; :func:`graph_dicts` -> its ``to_dict()`` form
* :func:`json_objects` -> small JSON-native dicts (for ``provenance`` / ``meta``)
* :func:`searches(labels)` -> :class:`Search` evidence over a vocabulary; :func:`with_evidence(graph, rng)`
  adds seeded evidence to any graph (``scene_graphs(evidence=True)`` draws it)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from hypothesis import strategies as st

from scene_graphs.model import (
    ATTRIBUTE_CATEGORIES,
    FIELDS,
    RELATION_SOURCES,
    Attribute,
    Box,
    DepthMap,
    Mask,
    Object,
    Relation,
    SceneGraph,
    Search,
    TextRegion,
    infer_fields,
)

LABELS = ("person", "dog", "cat", "car", "tree", "cup", "chair", "sign", "traffic light", "teddy bear")
PREDICATES = ("on", "next to", "holding", "left of", "behind", "wearing", "in front of")
ATTRIBUTE_NAMES = ("red", "blue", "wooden", "large", "small", "round", "open", "striped", "shiny")
WORDS = ("STOP", "EXIT", "Main St", "42", "café", "Ünïcödé", "日本語")

# Text that the model accepts (non-blank, valid UTF-8) and JSON can carry: no surrogates.
_SAFE_CHARS = st.characters(exclude_categories=("Cs",))
free_text = st.text(_SAFE_CHARS, min_size=1, max_size=12).filter(lambda s: s.strip() != "")
"""Any non-blank text without lone surrogates (emoji, combining marks, RTL, ... included)."""

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
"""Confidence scores in ``[0, 1]`` (both ends included)."""


_labels = st.one_of(st.sampled_from(LABELS), free_text)
_object_depths = st.floats(-1e6, 1e6, allow_nan=False)
_synsets = st.none() | st.sampled_from(("dog.n.01", "car.n.01", "person.n.01"))


def labels() -> st.SearchStrategy[str]:
    """A common label most of the time, sometimes arbitrary text (so label groups repeat)."""
    return _labels


@lru_cache(maxsize=None)
def image_sizes(max_side: int = 48) -> st.SearchStrategy[tuple[int, int]]:
    """``(width, height)``, each in ``[1, max_side]``."""
    return st.tuples(st.integers(1, max_side), st.integers(1, max_side))


@lru_cache(maxsize=None)
def _coordinate(limit: int) -> st.SearchStrategy[float]:
    # Whole pixels, image edges and arbitrary floats in between.
    return st.one_of(st.integers(0, limit).map(float), st.floats(0.0, float(limit), allow_nan=False))


@lru_cache(maxsize=None)
@st.composite
def boxes(draw: st.DrawFn, width: int, height: int) -> Box:
    """A box with ``0 <= x1 <= x2 <= width`` and ``0 <= y1 <= y2 <= height`` (degenerate boxes included)."""
    xs = sorted((draw(_coordinate(width)), draw(_coordinate(width))))
    ys = sorted((draw(_coordinate(height)), draw(_coordinate(height))))
    return Box(xs[0], ys[0], xs[1], ys[1])


@lru_cache(maxsize=None)
@st.composite
def mask_arrays(draw: st.DrawFn, width: int, height: int) -> np.ndarray:
    """A boolean ``(height, width)`` array: empty, full, a rectangle or random pixels."""
    kind = draw(st.sampled_from(("empty", "full", "rect", "random")))
    a = np.zeros((height, width), dtype=bool)
    if kind == "full":
        a[:] = True
    elif kind == "rect":
        b = draw(boxes(width, height))
        a[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))] = True
    elif kind == "random":
        seed = draw(st.integers(0, 2**32 - 1))
        a = np.random.default_rng(seed).random((height, width)) < draw(st.sampled_from((0.1, 0.5, 0.9)))
    return a


@lru_cache(maxsize=None)
def masks(width: int, height: int) -> st.SearchStrategy[Mask]:
    """A :class:`Mask` the size of a ``width`` x ``height`` image."""
    return mask_arrays(width, height).map(Mask.from_array)


_attributes = st.builds(Attribute, st.one_of(st.sampled_from(ATTRIBUTE_NAMES), free_text),
                        st.sampled_from(ATTRIBUTE_CATEGORIES), scores)
_attribute_lists = st.lists(_attributes, max_size=3).map(tuple)


def attributes() -> st.SearchStrategy[Attribute]:
    """An attribute with any category and score."""
    return _attributes


@lru_cache(maxsize=None)
def object_ids(min_size: int = 0, max_size: int = 6) -> st.SearchStrategy[list[str]]:
    """Distinct object ids: short numbers as strings (like importers make) or free text."""
    return st.lists(st.one_of(st.integers(0, 10**6).map(str), free_text), min_size=min_size, max_size=max_size,
                    unique=True)


@st.composite
def objects(draw: st.DrawFn, width: int, height: int, ids: Sequence[str], with_masks: bool | None = None,
            with_depth: bool | None = None) -> tuple[Object, ...]:
    """One object per id, boxes inside the image. ``with_masks``/``with_depth``: always, never, or
    (``None``) drawn once for the whole graph."""
    if with_masks is None:
        with_masks = draw(st.booleans())
    if with_depth is None:
        with_depth = draw(st.booleans())
    out = []
    for oid in ids:
        out.append(Object(
            id=oid,
            label=draw(_labels),
            box=draw(boxes(width, height)),
            score=draw(scores),
            mask=draw(masks(width, height)) if with_masks else None,
            attributes=draw(_attribute_lists),
            depth=draw(_object_depths) if with_depth else None,
            synset=draw(_synsets),
        ))
    return tuple(out)


_predicates = st.one_of(st.sampled_from(PREDICATES), free_text)
_sources = st.sampled_from(RELATION_SOURCES)


@st.composite
def relations(draw: st.DrawFn, ids: Sequence[str], max_size: int = 8) -> tuple[Relation, ...]:
    """Relations between existing ids (self-relations allowed), each ``(subject, predicate, object)``
    triple at most once."""
    if not ids:
        return ()
    ends = st.sampled_from(tuple(ids))
    triples = draw(st.lists(st.tuples(ends, _predicates, ends), max_size=max_size, unique=True))
    return tuple(Relation(s, p, o, draw(scores), draw(_sources)) for s, p, o in triples)


_text_ids = st.one_of(st.sampled_from(("t0", "t1", "t2", "t3")), free_text)
_words = st.one_of(st.sampled_from(WORDS), free_text)


@st.composite
def text_regions(draw: st.DrawFn, width: int, height: int, object_ids: Sequence[str] = (),
                 max_size: int = 3) -> tuple[TextRegion, ...]:
    """Text regions with distinct ids, boxes inside the image, sometimes attached to an object."""
    tids = draw(st.lists(_text_ids, max_size=max_size, unique=True))
    owner = st.none() | st.sampled_from(tuple(object_ids)) if object_ids else st.none()
    return tuple(TextRegion(tid, draw(_words), draw(boxes(width, height)), draw(scores), draw(owner))
                 for tid in tids)


_depth_constants = st.floats(-1e3, 1e3, width=32)


@st.composite
def depth_maps(draw: st.DrawFn, max_side: int = 16) -> DepthMap:
    """A float32 depth map of any small shape with finite values; either convention."""
    w, h = draw(image_sizes(max_side))
    kind = draw(st.sampled_from(("constant", "random", "ramp")))
    if kind == "constant":
        values = np.full((h, w), draw(_depth_constants), dtype=np.float32)
    elif kind == "ramp":
        values = np.add.outer(np.arange(h), np.arange(w)).astype(np.float32)
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        values = (np.random.default_rng(seed).standard_normal((h, w)) * 100).astype(np.float32)
    return DepthMap(values, draw(st.booleans()))


_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
                                                                                      allow_infinity=False) | free_text


@lru_cache(maxsize=None)
def json_objects(max_leaves: int = 6) -> st.SearchStrategy[dict[str, Any]]:
    """Small JSON-native dicts (what ``provenance`` and ``meta`` hold); they survive a JSON round trip."""
    values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(free_text, inner, max_size=3), max_leaves=max_leaves)
    return st.dictionaries(free_text, values, max_size=3)


sha256s = st.none() | st.text("0123456789abcdef", min_size=64, max_size=64)
"""``None`` or 64 lowercase hex digits."""


_extra_fields = st.lists(st.sampled_from(FIELDS), max_size=2)
_image_ids = st.one_of(st.text("0123456789abcdef", min_size=16, max_size=16), free_text)
_paths = st.one_of(st.just(""), st.sampled_from(("a/img.jpg", "b/img.jpg", "x.png")), free_text)


@st.composite
def scene_graphs(draw: st.DrawFn, min_objects: int = 0, max_objects: int = 6, max_side: int = 48,
                 masks: bool | None = None, depth: bool | None = None, relations: bool | None = None,
                 text: bool | None = None, evidence: bool | None = False) -> SceneGraph:
    """A valid :class:`SceneGraph`.

    ``evidence``: ``True`` adds one :class:`Search` (see :func:`searches`), ``None`` lets hypothesis choose,
    ``False`` (default) leaves the graph without evidence (unknown absence, like imports).

    ``masks``, ``depth``, ``relations``, ``text``: ``True`` forces the part (masks on every object; a
    depth map, with per-object depth summaries; relations and text regions where ids allow), ``False``
    leaves it out, ``None`` lets hypothesis choose. ``fields`` always covers what the graph holds and
    sometimes names more (a field annotated with nothing found).
    """
    width, height = draw(image_sizes(max_side))
    ids = draw(object_ids(min_objects, max_objects))
    with_depth = draw(st.booleans()) if depth is None else depth
    objs = draw(objects(width, height, ids, with_masks=masks, with_depth=with_depth))
    rels = draw(_relations_strategy(ids)) if (draw(st.booleans()) if relations is None else relations) else ()
    texts = draw(text_regions(width, height, ids)) if (draw(st.booleans()) if text is None else text) else ()
    depth_map = draw(depth_maps()) if with_depth else None
    fields = set(infer_fields(objs, rels, texts, depth_map))
    if rels or relations:
        fields.add("relations")
    if texts or text:
        fields.add("text")
    fields |= set(draw(_extra_fields))
    if "depth" in fields and depth_map is None and depth is False:
        fields.discard("depth")
    return SceneGraph(
        image_id=draw(_image_ids),
        width=width,
        height=height,
        path=draw(_paths),
        sha256=draw(sha256s),
        objects=objs,
        relations=rels,
        text=texts,
        depth=depth_map,
        fields=frozenset(fields),
        provenance=draw(json_objects()),
        meta=draw(json_objects()),
        evidence=(draw(searches([o.label for o in objs])),)
        if (draw(st.booleans()) if evidence is None else evidence) else (),
    )


_relations_strategy = relations  # scene_graphs() has a parameter of the same name


EVIDENCE_VOCABULARY = ("person", "dog", "cat", "car", "bus", "cup", "chair", "table", "bottle", "tree", "sign",
                       "bench", "horse", "book", "clock", "traffic light", "teddy bear", "bicycle")
"""What the synthetic annotator "searched for": most common labels, not all (``umbrella`` stays unknown)."""


@st.composite
def searches(draw: st.DrawFn, present: Sequence[str] = (), vocabulary: Sequence[str] = EVIDENCE_VOCABULARY) -> Search:
    """A :class:`Search` over ``vocabulary`` (plus ``present``): some labels with faint candidates below the
    threshold (any number of them, a crowd included), the rest seen not at all."""
    vocab = tuple(sorted(set(vocabulary) | set(present)))
    threshold = draw(st.sampled_from((0.25, 0.5)))
    floor = draw(st.sampled_from((0.05, 0.1)))
    faint = draw(st.lists(st.sampled_from(vocab), max_size=4, unique=True))
    best = {lbl: draw(st.floats(floor, threshold, exclude_max=True)) for lbl in faint}
    counts = {lbl: draw(st.integers(1, 30)) for lbl in faint}
    return Search("synthetic-detector", vocab, threshold, floor, best, counts)


def with_evidence(graph: SceneGraph, rng: np.random.Generator, share: float = 0.7) -> SceneGraph:
    """``graph`` with seeded :class:`Search` evidence (``share`` of the time; otherwise unchanged, i.e.
    unknown): the vocabulary covers the COCO categories, :data:`EVIDENCE_VOCABULARY` and the graph's
    labels, a few labels (present or not) have faint candidates, sometimes a crowd of them; when the
    graph has a text field, a text reader's search for ``"text"`` is recorded too (faint when the reader
    saw regions below its threshold, i.e. sometimes)."""
    if rng.random() >= share:
        return graph
    from programs.scenes import COCO_CATEGORIES  # a COCO detector's vocabulary, like the bundled one

    vocab = sorted(set(EVIDENCE_VOCABULARY) | set(COCO_CATEGORIES) | {o.label for o in graph.objects})
    threshold, floor = 0.5, 0.05
    best, counts = {}, {}
    for lbl in vocab:
        if rng.random() < 0.15:
            best[lbl] = round(float(rng.uniform(floor, threshold - 0.01)), 3)
            counts[lbl] = int(rng.choice((1, 2, 12)))
    evidence = [Search("synthetic-detector", tuple(vocab), threshold, floor, best, counts)]
    if "text" in graph.fields:
        faint = {"text": 0.2} if rng.random() < 0.2 else {}
        evidence.append(Search("synthetic-ocr", ("text",), 0.5, 0.05, faint, {}))
    return graph.replace(evidence=tuple(evidence))


def graph_dicts(**kwargs: Any) -> st.SearchStrategy[dict[str, Any]]:
    """``SceneGraph.to_dict()`` of a valid graph (depth key = image id); same options as :func:`scene_graphs`."""
    return scene_graphs(**kwargs).map(lambda g: g.to_dict())
