"""CLIP label agreement (full profile): the decision rule on given logits, the view count behind a
demotion, and the real OpenCLIP model (random initialisation: no CLIP weights here) recording its
evidence and demoting exactly the objects its own output does not confirm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scene_graphs.model import Box, Object, SceneGraph, Search
from scene_graphs.perception.clip_check import (
    MARGIN,
    PROMPTS,
    TOP_K,
    LabelChecker,
    apply_verdicts,
    demoted_score,
    judge_label,
    views_so_far,
)
from scene_graphs.perception.images import item_from_array, load_image
from scene_graphs.perception.profiles import PROFILES, build_pipeline, make_config

SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))
needs_weights = pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")
PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "images"
LABELS = ("bird", "cat", "dog", "horse", "sports ball")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- decision rule
@pytest.mark.parametrize("logits, label, top_k, margin, rank, confirmed", [
    ([9.0, 1.0, 2.0, 3.0, 4.0], "bird", 5, 3.0, 1, True),        # CLIP's best label
    ([5.0, 1.0, 6.0, 3.0, 4.0], "bird", 2, 3.0, 2, True),        # second, 1 logit behind
    ([5.0, 1.0, 9.0, 3.0, 4.0], "bird", 2, 3.0, 2, False),       # second but 4 logits behind the best
    ([2.0, 9.0, 8.0, 7.0, 6.0], "bird", 4, 100.0, 5, False),     # fifth of five, top-4 wanted
    ([2.0, 9.0, 8.0, 7.0, 6.0], "bird", 5, 100.0, 5, True),      # ... fifth allowed
    ([7.0, 7.0, 7.0, 1.0, 1.0], "dog", 1, 0.0, 1, True),         # a tie counts in the label's favour
    ([1.0, 1.0, 1.0, 1.0, 1.0], "sports ball", 1, 0.0, 1, True),
])
def test_decision_rule(logits, label: str, top_k: int, margin: float, rank: int, confirmed: bool) -> None:
    v = judge_label(logits, LABELS, label, top_k=top_k, margin=margin)
    assert (v.rank, v.confirmed) == (rank, confirmed)
    probs = np.exp(np.array(logits) - max(logits))
    probs /= probs.sum()
    assert v.probability == pytest.approx(probs[LABELS.index(label)])
    assert v.best_probability == pytest.approx(probs.max())
    assert v.gap == pytest.approx(max(logits) - logits[LABELS.index(label)])
    assert v.best == (label if v.gap == 0 else LABELS[int(np.argmax(logits))])


def test_margin_is_a_probability_ratio() -> None:
    """A margin of m logits lets the label's probability fall to exp(-m) of the best's, no lower."""
    just_in = judge_label([0.0, MARGIN], ("cat", "dog"), "cat", top_k=2)
    just_out = judge_label([0.0, MARGIN + 1e-6], ("cat", "dog"), "cat", top_k=2)
    assert just_in.confirmed and not just_out.confirmed
    assert just_in.probability / just_in.best_probability == pytest.approx(np.exp(-MARGIN))


@pytest.mark.parametrize("logits, labels, label", [([1.0, 2.0], LABELS, "cat"), ([1.0, 2.0], ("cat", "dog"), "cow")])
def test_decision_rule_refuses_mismatched_input(logits, labels, label) -> None:
    with pytest.raises(ValueError):
        judge_label(logits, labels, label)


def _graph(provenance: dict, *objects: Object, vocabulary: tuple[str, ...] | None = LABELS) -> SceneGraph:
    evidence = (Search("detect", vocabulary, 0.25),) if vocabulary is not None else ()
    return SceneGraph("img", 200, 100, objects=objects, fields={"objects"}, provenance=provenance, evidence=evidence)


@pytest.mark.parametrize("stages, views", [
    ({}, 1),
    ({"detect": {"views": ["image"]}}, 1),
    ({"detect": {"views": ["image"]}, "segment": {"options": {"agreement": True, "model": "yolo11n-seg"}}}, 2),
    ({"detect": {"views": ["image", "flip"]}, "segment": {"options": {"agreement": True, "model": "yolo11n-seg"}}}, 3),
    ({"detect": {"views": ["image"]}, "segment": {"options": {"agreement": False, "model": "yolo11n-seg"}}}, 1),
    ({"detect": {"views": ["image"]}, "segment": {"options": {"agreement": True, "model": "mobile_sam"}}}, 1),
])
def test_views_behind_a_score(stages: dict, views: int) -> None:
    assert views_so_far(_graph({"stages": stages})) == views


def test_unconfirmed_objects_are_demoted_like_an_unseen_view() -> None:
    objects = (Object("0", "dog", Box(0, 0, 50, 50), 0.9), Object("1", "bird", Box(60, 0, 120, 50), 0.6))
    verdicts = [judge_label([1.0, 2.0, 9.0, 3.0, 4.0], LABELS, "dog", top_k=1, margin=0.0),
                judge_label([1.0, 2.0, 9.0, 3.0, 4.0], LABELS, "bird", top_k=1, margin=0.0)]
    out, record = apply_verdicts(objects, verdicts, views=2)
    assert out[0] is objects[0] and record["0"]["confirmed"] and record["0"]["score"] == 0.9
    assert out[1].score == pytest.approx(0.4) == demoted_score(0.6, 2)
    assert record["1"] == {**verdicts[1].to_dict(), "score_before": 0.6, "score": out[1].score}
    assert not record["1"]["confirmed"] and record["1"]["best"] == "dog" and record["1"]["rank"] == 5


def test_full_profile_checks_labels_and_fast_does_not() -> None:
    assert "clip_attributes" not in PROFILES["fast"]
    full = make_config("full")
    assert full.stages["clip_attributes"]["enabled"]
    from scene_graphs.perception.attributes import ClipAttributes

    assert ClipAttributes.defaults["label_check"] == "detect"
    assert (ClipAttributes.defaults["label_top_k"], ClipAttributes.defaults["label_margin"]) == (TOP_K, MARGIN)
    assert all("{label}" in p for p in PROMPTS) and PROMPTS[0] == "a photo of a {label}."


# --------------------------------------------------------------------------- the real model (random init)
@pytest.fixture(scope="module")
def clip():
    pytest.importorskip("open_clip")
    from scene_graphs.perception.attributes import ClipAttributes

    return ClipAttributes(random_init=True, categories=(), batch_size=4).load("cpu")


def _scene(*objects: Object, vocabulary: tuple[str, ...] | None = LABELS):
    pixels = np.random.default_rng(5).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    item = item_from_array(pixels, "p.png")
    prov = {"stages": {"detect": {"views": ["image"]},
                       "segment": {"options": {"agreement": True, "model": "yolo11n-seg"}}}}
    graph = SceneGraph(item.image_id, 200, 100, objects=objects, fields={"objects"}, provenance=prov,
                       evidence=(Search("detect", vocabulary, 0.25),) if vocabulary is not None else ())
    return item, graph, pixels


@pytest.mark.slow
def test_random_clip_records_evidence_that_matches_the_model(clip) -> None:
    """Every object's record is what the model says when asked by hand (ensemble text embeddings, crop
    embedding, logit scale), and only the objects it does not confirm lose score."""
    import torch
    from PIL import Image

    from scene_graphs.perception.attributes import crop_box

    objects = (Object("0", "dog", Box(5, 5, 70, 90), 0.8), Object("1", "cat", Box(80, 10, 190, 95), 0.7),
               Object("2", "bird", Box(100, 40, 130, 70), 0.6))
    item, graph, pixels = _scene(*objects)
    (out,) = clip([item], [graph])
    record = out.provenance["stages"]["clip_attributes"]["label_check"]
    assert (record["against"], record["top_k"], record["margin"], record["views"]) == ("detect", TOP_K, MARGIN, 2)
    assert set(record["objects"]) == {"0", "1", "2"}
    model, preprocess, tok = clip.scorer.model, clip.scorer.preprocess, clip.scorer.tokenizer
    labels = sorted(LABELS)
    with torch.inference_mode():
        text = model.encode_text(tok([p.format(label=lab) for lab in labels for p in PROMPTS])).float()
        text = (text / text.norm(dim=-1, keepdim=True)).reshape(len(labels), len(PROMPTS), -1).mean(1)
        text = text / text.norm(dim=-1, keepdim=True)
        for o, new in zip(objects, out.objects):
            x1, y1, x2, y2 = crop_box(o.box, 200, 100, 0.1, 16.0)
            f = model.encode_image(preprocess(Image.fromarray(pixels[y1:y2, x1:x2]))[None]).float()
            logits = (model.logit_scale.exp() * (f / f.norm(dim=-1, keepdim=True)) @ text.T)[0].numpy()
            rec = record["objects"][o.id]
            assert rec["rank"] == 1 + int((logits > logits[labels.index(o.label)]).sum())
            assert rec["best"] == labels[int(np.argmax(logits))]
            assert rec["gap"] == pytest.approx(float(logits.max() - logits[labels.index(o.label)]), abs=1e-3)
            assert rec["score_before"] == o.score
            assert new.score == (o.score if rec["confirmed"] else pytest.approx(o.score * 2 / 3, abs=1e-6))
            assert rec["score"] == new.score


@pytest.mark.slow
def test_random_clip_confirms_its_best_label_and_demotes_its_worst() -> None:
    """Labels chosen from the model's own output (top-2 wanted): the crop labelled with CLIP's best label
    keeps its score; the same crop labelled with CLIP's last-ranked label loses a third (two views before)."""
    pytest.importorskip("open_clip")
    from scene_graphs.perception.attributes import ClipAttributes, crop_box

    stage = ClipAttributes(random_init=True, categories=(), label_top_k=2).load("cpu")
    box = Box(20, 10, 120, 90)
    item, graph, pixels = _scene(Object("0", "dog", box, 0.75))
    (first,) = stage([item], [graph])
    x1, y1, x2, y2 = crop_box(box, 200, 100, 0.1, 16.0)
    feats = stage.scorer.embed_images([np.ascontiguousarray(pixels[y1:y2, x1:x2])])
    logits = stage.label_checker.logits(feats, sorted(LABELS))[0]
    worst = sorted(LABELS)[int(np.argmin(logits))]
    best = first.provenance["stages"]["clip_attributes"]["label_check"]["objects"]["0"]["best"]
    assert best == sorted(LABELS)[int(np.argmax(logits))] != worst
    for label, confirmed in ((best, True), (worst, False)):
        item, graph, _ = _scene(Object("0", label, box, 0.75))
        (out,) = stage([item], [graph])
        rec = out.provenance["stages"]["clip_attributes"]["label_check"]["objects"]["0"]
        assert (rec["confirmed"], rec["rank"]) == (confirmed, 1 if confirmed else len(LABELS))
        assert out.objects[0].score == (0.75 if confirmed else 0.5)
    strict = LabelChecker(stage.scorer, top_k=1, margin=0.0)
    import torch

    both = strict.verdicts(torch.cat([feats, feats]), [best, worst], LABELS)
    assert [v.confirmed for v in both] == [True, False]


@pytest.mark.slow
@pytest.mark.parametrize("vocabulary, label_check", [(None, "detect"), (LABELS, "")], ids=["no-search", "off"])
def test_no_check_without_the_detector_search_or_when_off(vocabulary, label_check: str) -> None:
    pytest.importorskip("open_clip")
    from scene_graphs.perception.attributes import ClipAttributes

    stage = ClipAttributes(random_init=True, categories=(), label_check=label_check).load("cpu")
    objects = (Object("0", "horse", Box(5, 5, 70, 90), 0.8), Object("1", "sports ball", Box(80, 10, 190, 95), 0.7))
    item, graph, _ = _scene(*objects, vocabulary=vocabulary)
    (out,) = stage([item], [graph])
    assert out.objects == objects
    assert "label_check" not in out.provenance["stages"]["clip_attributes"]


# --------------------------------------------------------------------------- full profile, real photos
def _full(*overrides: str):
    cfg = make_config("full", only=["detect", "segment", "clip_attributes"], overrides=overrides)
    return build_pipeline(cfg)


@needs_weights
@pytest.mark.slow
def test_full_profile_on_a_photo_records_clip_evidence_per_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """street_bus.jpg through the real detector and segmenter, then random-init CLIP: every detected
    object has its CLIP record, and its final score is the segmenter stage's, demoted when unconfirmed."""
    pytest.importorskip("open_clip")
    from scene_graphs.schema import validate_against_schema

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(SHARED))
    item = load_image(PHOTOS / "street_bus.jpg", PHOTOS)
    without = build_pipeline(make_config("full", only=["detect", "segment"])).load("cpu")
    (before,) = without.annotate([item])
    (after,) = _full("clip_attributes.random_init=true").load("cpu").annotate([item])
    record = after.provenance["stages"]["clip_attributes"]["label_check"]
    assert record["views"] == 2 and len(before.objects) >= 3
    assert set(record["objects"]) == {o.id for o in before.objects}
    for b, a in zip(before.objects, after.objects):
        rec = record["objects"][b.id]
        assert (a.id, a.label, a.box) == (b.id, b.label, b.box) and rec["score_before"] == b.score
        assert a.score == (b.score if rec["confirmed"] else pytest.approx(b.score * 2 / 3, abs=1e-6))
        assert 1 <= rec["rank"] <= 80
    validate_against_schema(after.to_dict())


@needs_weights
def test_missing_clip_weights_is_the_resolvers_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without CLIP weights the full profile's optional stage is skipped with the resolver's message,
    and made required it raises that error."""
    pytest.importorskip("open_clip")
    from scene_graphs.perception.weights import MissingWeightsError

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(SHARED))
    with pytest.raises(MissingWeightsError, match="open_clip_model.safetensors") as required:
        _full("clip_attributes.optional=false").load("cpu")
    skipped = _full().load("cpu")
    assert skipped.skipped["clip_attributes"] == str(required.value)
    assert "clip_attributes" not in [s.name for s in skipped.stages]


@pytest.mark.parametrize("options, message", [({"label_top_k": 0}, "label_top_k must be at least 1"),
                                              ({"label_prompts": ("a photo",)}, "needs '{label}'")])
def test_bad_label_check_options_are_refused(options: dict, message: str) -> None:
    pytest.importorskip("open_clip")
    from scene_graphs.perception.attributes import ClipAttributes
    from scene_graphs.perception.base import AnnotatorError

    with pytest.raises(AnnotatorError, match=message):
        ClipAttributes(random_init=True, **options).load("cpu")
