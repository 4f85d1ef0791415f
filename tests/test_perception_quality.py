"""The quality profile's models (OpenCLIP tagger, OWLv2, SAM 2, Depth Anything V2 large) with random weights.

No weights exist here, so every model is built by its real loading code from its transformers / open_clip
configuration (``random_init``); where the real size is too slow on two CPU cores the same classes are built
from a smaller ``config.json`` (``random_init_config``). Outputs are noise: the tests check plumbing
(batching, padding, coordinates, evidence, provenance, errors), not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("transformers")
pytest.importorskip("open_clip")

from scene_graphs.io import read_graphs  # noqa: E402
from scene_graphs.model import Box, Object  # noqa: E402
from scene_graphs.perception.images import ImageItem, load_image  # noqa: E402
from scene_graphs.perception.profiles import make_config  # noqa: E402
from scene_graphs.perception.weights import MissingWeightsError, resolve  # noqa: E402
from scene_graphs.schema import validate_against_schema  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "images"
IMAGES = ("street_bus.jpg", "people_cameraman.jpg", "indoor_coffee_cup.jpg")

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def no_weights_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing to find and nothing to download: only random_init can build a model."""
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.fixture(scope="module")
def items() -> list[ImageItem]:
    return [load_image(ASSETS / name, ASSETS) for name in IMAGES]


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Small ``config.json`` files of the real configurations (same model classes, fewer and narrower layers),
    by stage name."""
    from scene_graphs.perception.quality import small_random_configs

    return small_random_configs(tmp_path_factory.mktemp("configs"))


@pytest.fixture(scope="module")
def tagger() -> Any:
    from scene_graphs.perception.quality import ImageTagger

    return ImageTagger(random_init=True, vocabulary="bus,person,coffee cup,dog,bicycle", min_score=0.0, top_k=3,
                       batch_size=2).load("cpu")


def _empty(item: ImageItem, **meta: Any) -> Any:
    from scene_graphs.perception.pipeline import Pipeline

    g = Pipeline([], {}).empty_graph(item)
    return g.replace(meta={**g.meta, **meta})


# ------------------------------------------------------------------------------------ tagger
def test_tagger_batches_like_one_by_one_and_writes_tags(tagger: Any, items: list[ImageItem]) -> None:
    items = items[:2]
    together = tagger.tags(items)
    alone = [tagger.tags([it])[0] for it in items]
    assert [[t["name"] for t in ts] for ts in together] == [[t["name"] for t in ts] for ts in alone]
    for a, b in zip(together, alone):
        assert [t["score"] for t in a] == pytest.approx([t["score"] for t in b], abs=2e-4)
        assert len(a) == 3 and all(x["score"] >= y["score"] for x, y in zip(a, a[1:]))
    graphs = tagger(items, [_empty(it) for it in items])
    assert [g.meta["tags"] for g in graphs] == together
    prov = graphs[0].provenance["stages"]["tag"]
    assert prov["models"][0]["origin"] == "random-init" and prov["vocabulary_size"] == 5


def test_tagger_prompt_embeddings_are_the_full_context_ones(tagger: Any) -> None:
    """The tagger embeds its prompts on the tokens up to the longest prompt's end (a sixth of the cost)."""
    import open_clip
    import torch

    from scene_graphs.perception.quality import TAG_PROMPT

    with torch.inference_mode():
        tokens = open_clip.get_tokenizer("ViT-B-32")([TAG_PROMPT.format(tag=t) for t in tagger.vocabulary])
        full = tagger.model.encode_text(tokens).float()
    full = full / full.norm(dim=-1, keepdim=True)
    assert torch.allclose(tagger.text, full, atol=1e-5)


def test_default_tag_vocabulary_is_large_and_clean() -> None:
    from scene_graphs.perception.quality import default_tag_vocabulary

    vocab = default_tag_vocabulary()
    assert len(vocab) > 300 and len(set(vocab)) == len(vocab)
    assert vocab[:3] == ["person", "bicycle", "car"] and all(v == v.strip() and "#" not in v for v in vocab)


# ------------------------------------------------------------------------------------ OWLv2
def test_owl_boxes_are_pixels_of_the_padded_square() -> None:
    """OWLv2 predicts (cx, cy, w, h) relative to the image padded to a square at the bottom/right."""
    from scene_graphs.perception.quality import owl_detections

    scores = np.array([[0.9, 0.1], [0.02, 0.04], [0.3, 0.6]])
    boxes = np.array([[0.5, 0.25, 0.2, 0.1], [0.1, 0.1, 0.1, 0.1], [0.25, 0.5, 0.5, 0.5]])
    found = owl_detections(scores, boxes, ["cat", "dog"], width=400, height=200)
    assert [(d.label, d.score) for d in found] == [("cat", 0.9), ("dog", 0.6)]  # the 2nd patch is under the floor
    assert found[0].box == pytest.approx((160.0, 80.0, 240.0, 120.0))
    assert found[1].box == pytest.approx((0.0, 100.0, 200.0, 300.0))


@pytest.fixture(scope="module")
def owl(configs: dict[str, str]) -> Any:
    from scene_graphs.perception.quality import OpenVocabDetector

    return OpenVocabDetector(random_init=True, random_init_config=configs["ov_detect"], vocabulary="car", conf=0.0,
                             max_objects=5, batch_size=3).load("cpu")


def test_owlv2_batches_like_one_by_one_with_padded_queries(owl: Any, items: list[ImageItem]) -> None:
    tags = [[{"name": "bus", "score": 0.5}, {"name": "person", "score": 0.2}], [], [{"name": "coffee cup", "score": 1.0}]]
    graphs = [_empty(it, tags=t) for it, t in zip(items, tags)]
    queries = [owl.queries(g) for g in graphs]
    assert queries == [["car", "bus", "person"], ["car"], ["car", "coffee cup"]]
    together = owl.detect(items, queries)
    alone = [owl.detect([it], [q])[0] for it, q in zip(items, queries)]
    assert all(together) and [len(c) for c in together] == [len(c) for c in alone]
    for a, b in zip(together, alone):
        assert [d.label for d in a] == [d.label for d in b]
        assert np.allclose([d.box for d in a], [d.box for d in b], atol=1e-2)
        assert np.allclose([d.score for d in a], [d.score for d in b], atol=1e-4)
    for cands, q in zip(together, queries):
        assert {d.label for d in cands} <= set(q)  # never a padding query


def test_owlv2_fills_objects_and_records_its_search(owl: Any, items: list[ImageItem]) -> None:
    graphs = owl(items, [_empty(it, tags=[{"name": "bus", "score": 0.5}]) for it in items])
    for g in graphs:
        assert "objects" in g.fields and 0 < len(g.objects) <= 5
        assert [o.id for o in g.objects] == [str(i) for i in range(len(g.objects))]
        assert all(0 <= o.box.x1 < o.box.x2 <= g.width and 0 <= o.box.y1 < o.box.y2 <= g.height for o in g.objects)
        (search,) = [e for e in g.evidence if e.annotator == "ov_detect"]
        assert search.vocabulary == ("bus", "car") and search.threshold == 0.0
        validate_against_schema(g.to_dict())
    assert graphs[0].provenance["stages"]["ov_detect"]["models"][0]["origin"] == "random-init"


def test_owlv2_asks_for_tags_loudly(owl: Any, items: list[ImageItem]) -> None:
    from scene_graphs.perception.base import AnnotatorError
    from scene_graphs.perception.quality import OpenVocabDetector

    with pytest.raises(AnnotatorError, match="run the tag stage"):
        OpenVocabDetector(random_init=True, use_tags=True).queries(_empty(items[0]))
    assert owl.queries(_empty(items[0])) == ["car"]  # a fixed vocabulary needs no tags


def test_owlv2_base_configuration_is_the_published_one() -> None:
    import torch
    from transformers import Owlv2ForObjectDetection

    from scene_graphs.perception.quality import owlv2_base_config

    cfg = owlv2_base_config()
    with torch.device("meta"):
        model = Owlv2ForObjectDetection(cfg)
    assert (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2 == 3600
    assert model.owlv2.text_model.embeddings.position_embedding.num_embeddings == 16
    assert 150e6 < sum(p.numel() for p in model.parameters()) < 160e6


# ------------------------------------------------------------------------------------ SAM 2
def test_sam2_masks_every_box_and_batches_like_one_by_one(configs: dict[str, str], items: list[ImageItem]) -> None:
    from scene_graphs.perception.quality import BoxSegmenter

    boxes = [[(20, 30, 300, 260), (310, 80, 420, 200)], [(50, 10, 200, 150)], []]
    graphs = [_empty(it).replace(objects=tuple(Object(str(k), "thing", Box(*b), 0.9) for k, b in enumerate(bs)),
                                 fields=frozenset({"objects"})) for it, bs in zip(items, boxes)]
    batched = BoxSegmenter(random_init=True, random_init_config=configs["sam2"], batch_size=3).load("cpu")
    together = batched.masks(items, graphs)
    alone = [batched.masks([it], [g])[0] for it, g in zip(items, graphs)]
    assert [len(m) for m in together] == [2, 1, 0]
    for ms_a, ms_b, it in zip(together, alone, items):
        for a, b in zip(ms_a, ms_b):
            assert (a is None) == (b is None)
            if a is not None:
                x, y = a.to_array(), b.to_array()
                assert x.shape == (it.height, it.width) and (x == y).mean() > 0.999
    out = batched(items, graphs)
    assert all("masks" in g.fields for g in out)
    assert sum(o.mask is not None for g in out for o in g.objects) == sum(m is not None for ms in together for m in ms)
    assert out[0].provenance["stages"]["sam2"]["models"][0]["origin"] == "random-init"


def test_sam2_large_configuration_builds() -> None:
    import torch
    from transformers import Sam2Model

    from scene_graphs.perception.quality import sam2_config

    with torch.device("meta"):
        tiny, large = Sam2Model(sam2_config("sam2.1-hiera-tiny")), Sam2Model(sam2_config("sam2.1-hiera-large"))
    count = [sum(p.numel() for p in m.parameters()) for m in (tiny, large)]
    assert 25e6 < count[0] < 40e6 and 200e6 < count[1] < 230e6


# ------------------------------------------------------------------------------------ depth
def test_depth_anything_v2_large_configuration_is_the_published_one() -> None:
    """ViT-L/14 DINOv2 + DPT head: 335.3 M parameters (the model card's figure)."""
    import torch
    from transformers import AutoModelForDepthEstimation

    from scene_graphs.perception.depth import depth_anything_v2_large_config

    with torch.device("meta"):
        model = AutoModelForDepthEstimation.from_config(depth_anything_v2_large_config())
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(335.3, abs=0.1)


# ------------------------------------------------------------------------------------ missing weights
@pytest.mark.parametrize(("stage", "model"), [("tag", "clip-vit-b-32"), ("ov_detect", "owlv2-base"),
                                              ("sam2", "sam2.1-hiera-tiny"), ("depth", "depth-anything-v2-large")])
def test_missing_weights_give_the_resolvers_error(stage: str, model: str) -> None:
    from scene_graphs.perception.profiles import build_pipeline

    cfg = make_config("quality", only=[stage])
    (annotator,) = build_pipeline(cfg).stages
    with pytest.raises(MissingWeightsError) as err:
        annotator.load("cpu")
    text = str(err.value)
    assert f"no weights for model {model!r}" in text and f"--weights {model}=PATH" in text


def test_a_failed_download_is_the_same_error() -> None:
    from scene_graphs.perception.quality import OpenVocabDetector, load_hf

    stage = OpenVocabDetector()
    stage.offline = False

    def unreachable(source: str) -> Any:
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files of {source}.")

    assert resolve("owlv2-base", offline=False).origin == "download"
    with pytest.raises(MissingWeightsError, match="no weights for model 'owlv2-base'.*download through hf failed"):
        load_hf(stage, "owlv2-base", unreachable, lambda: None)


def test_quality_profile_needs_every_model(items: list[ImageItem]) -> None:
    cfg = make_config("quality")
    assert cfg.enabled_stages() == ["tag", "ov_detect", "sam2", "depth", "color", "clip_attributes", "relations",
                                    "clip_relations", "ocr"]
    assert not any(cfg.stages[n].get("optional") for n in cfg.enabled_stages())
    assert cfg.stages["depth"]["model"] == "depth-anything-v2-large"


# ------------------------------------------------------------------------------------ end to end
def test_annotate_quality_end_to_end(tmp_path: Path, configs: dict[str, str]) -> None:
    """``mmgen annotate --profile quality`` on two bundled photos, every model random-initialised."""
    from mmgen.cli import main

    images = tmp_path / "imgs"
    images.mkdir()
    for name in IMAGES[:2]:
        (images / name).write_bytes((ASSETS / name).read_bytes())
    toml = tmp_path / "quality.toml"
    toml.write_text(f"""profile = "quality"
[stages.tag]
random_init = true
vocabulary = "bus,person,camera"
min_score = 0.0
top_k = 2
[stages.ov_detect]
random_init = true
random_init_config = "{configs['ov_detect']}"
conf = 0.0
max_objects = 2
[stages.sam2]
random_init = true
random_init_config = "{configs['sam2']}"
[stages.depth]
random_init = true
random_init_config = "{configs['depth']}"
input_size = 56
map_max_side = 32
[stages.clip_attributes]
random_init = true
categories = ["size"]
min_score = 0.0
[stages.clip_relations]
random_init = true
min_prob = 0.0
""")
    out = tmp_path / "sg"
    res = CliRunner().invoke(main, ["annotate", str(images), "-o", str(out), "--profile", "quality",
                                    "--config", str(toml), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    graphs = [g for p in sorted(out.glob("part-*.jsonl")) for g in read_graphs(p)]
    assert sorted(Path(g.path).name for g in graphs) == sorted(IMAGES[:2])
    for g in graphs:
        validate_against_schema(g.to_dict())
        assert g.has("objects", "masks", "depth", "attributes", "relations", "text")
        assert len(g.meta["tags"]) == 2 and {t["name"] for t in g.meta["tags"]} <= {"bus", "person", "camera"}
        assert 0 < len(g.objects) <= 2 and all(o.mask is not None for o in g.objects)
        assert all(o.label in {"bus", "person", "camera"} for o in g.objects)
        assert any(a.category == "size" for o in g.objects for a in o.attributes)
        stages = g.provenance["stages"]
        assert list(stages) == ["tag", "ov_detect", "sam2", "depth", "color", "clip_attributes", "relations",
                                "clip_relations", "ocr"]
        for name in ("tag", "ov_detect", "sam2", "depth", "clip_attributes", "clip_relations"):
            assert stages[name]["models"][0]["origin"] == "random-init", name
        assert stages["depth"]["models"][0]["model"] == "depth-anything-v2-large"
        assert any(e.annotator == "ov_detect" for e in g.evidence)
    summary = json.loads((out / "annotate.json").read_text())
    assert summary["profile"] == "quality" and summary["graphs"] == 2


def test_annotate_quality_without_weights_fails_in_one_line(tmp_path: Path) -> None:
    from mmgen.cli import main

    images = tmp_path / "imgs"
    images.mkdir()
    (images / IMAGES[0]).write_bytes((ASSETS / IMAGES[0]).read_bytes())
    res = CliRunner().invoke(main, ["annotate", str(images), "-o", str(tmp_path / "sg"), "--profile", "quality",
                                    "--device", "cpu", "--offline"])
    assert res.exit_code != 0
    assert "no weights for model 'clip-vit-b-32'" in res.output and "Traceback" not in res.output
