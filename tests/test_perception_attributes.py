"""Attributes: colour names from pixels (hand-labelled patches) and CLIP zero-shot plumbing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scene_graphs.model import Attribute, Box, Mask, Object, SceneGraph
from scene_graphs.perception.attributes import (
    CLIP_VOCABULARY,
    NONE_WORDS,
    ClipAttributes,
    ColorAttributes,
    crop_box,
)
from scene_graphs.perception.images import item_from_array
from scene_graphs.vocab import attribute_category

pytest.importorskip("skimage")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def colors() -> ColorAttributes:
    return ColorAttributes().load("cpu")


def _scene(pixels: np.ndarray, *objects: Object):
    h, w = pixels.shape[:2]
    item = item_from_array(pixels, "p.png")
    return item, SceneGraph(item.image_id, w, h, objects=objects, fields={"objects"})


# Solid patches labelled by hand with their basic colour term (CSS colour names in comments).
PATCHES = [
    ((220, 20, 60), "red"),       # crimson
    ((178, 34, 34), "red"),       # firebrick
    ((128, 0, 0), "red"),         # maroon
    ((255, 140, 0), "orange"),    # darkorange
    ((255, 215, 0), "yellow"),    # gold
    ((34, 139, 34), "green"),     # forestgreen
    ((0, 100, 0), "green"),       # darkgreen
    ((50, 205, 50), "green"),     # limegreen
    ((0, 0, 128), "blue"),        # navy
    ((65, 105, 225), "blue"),     # royalblue
    ((135, 206, 235), "blue"),    # skyblue
    ((128, 0, 128), "purple"),    # purple
    ((102, 51, 153), "purple"),   # rebeccapurple
    ((255, 105, 180), "pink"),    # hotpink
    ((139, 69, 19), "brown"),     # saddlebrown
    ((160, 82, 45), "brown"),     # sienna
    ((255, 255, 255), "white"),
    ((245, 245, 245), "white"),   # whitesmoke
    ((0, 0, 0), "black"),
    ((105, 105, 105), "gray"),    # dimgray
    ((192, 192, 192), "gray"),    # silver
]


@pytest.mark.parametrize("rgb, name", PATCHES, ids=[n + str(c) for c, n in PATCHES])
def test_solid_patches_get_their_colour_name(colors: ColorAttributes, rgb, name: str) -> None:
    pixels = np.zeros((40, 40, 3), np.uint8) + np.array(rgb, np.uint8)
    noise = np.random.default_rng(0).integers(-6, 7, pixels.shape)
    pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)  # sensor noise
    item, g = _scene(pixels, Object("0", "thing", Box(0, 0, 40, 40)))
    (out,) = colors([item], [g])
    attrs = out.objects[0].attributes
    assert [a.name for a in attrs] == [name]
    assert attrs[0].category == "color" and attrs[0].score == pytest.approx(1.0, abs=0.02)
    assert attribute_category(name) == "color"


@pytest.mark.parametrize("rgb", [(0, 128, 128), (0, 255, 255)], ids=["teal", "cyan"])
def test_colours_far_from_every_prototype_stay_unnamed(colors: ColorAttributes, rgb) -> None:
    item, g = _scene(np.zeros((20, 20, 3), np.uint8) + np.array(rgb, np.uint8), Object("0", "t", Box(0, 0, 20, 20)))
    (out,) = colors([item], [g])
    assert out.objects[0].attributes == ()


def test_the_mask_decides_which_pixels_count(colors: ColorAttributes) -> None:
    pixels = np.zeros((60, 60, 3), np.uint8)
    pixels[:, :30] = (200, 25, 25)   # red left half
    pixels[:, 30:] = (30, 70, 200)   # blue right half
    mask = np.zeros((60, 60), bool)
    mask[5:55, 2:28] = True
    masked = Object("m", "shirt", Box(0, 0, 60, 60), mask=Mask.from_array(mask))
    boxed = Object("b", "flag", Box(0, 0, 60, 60))
    item, g = _scene(pixels, masked, boxed)
    (out,) = colors([item], [g])
    assert out.objects_by_id["m"].attribute_names("color") == ["red"]
    both = {a.name: a.score for a in out.objects_by_id["b"].attributes}
    assert set(both) == {"red", "blue"} and both["red"] == pytest.approx(0.5, abs=0.05)


def test_box_without_mask_ignores_its_border(colors: ColorAttributes) -> None:
    pixels = np.full((100, 100, 3), 250, np.uint8)  # white background
    pixels[12:88, 12:88] = (40, 150, 50)           # a green thing filling the box but its 12 % border
    item, g = _scene(pixels, Object("0", "ball", Box(0, 0, 100, 100)))
    (out,) = colors([item], [g])
    assert out.objects[0].attribute_names("color") == ["green"]


def test_existing_attributes_are_kept_and_not_duplicated(colors: ColorAttributes) -> None:
    o = Object("0", "car", Box(0, 0, 20, 20), attributes=(Attribute("red", "color", 1.0), Attribute("old", "state")))
    item, g = _scene(np.zeros((20, 20, 3), np.uint8) + np.array([200, 25, 25], np.uint8), o)
    (once,) = colors([item], [g])
    (twice,) = colors([item], [once])
    assert [(a.name, a.score) for a in twice.objects[0].attributes] == [("red", 1.0), ("old", 1.0)]
    assert twice.has("attributes") and "color" in twice.provenance["stages"]


def test_clip_vocabulary_agrees_with_the_shared_vocabulary() -> None:
    for category, words in CLIP_VOCABULARY.items():
        for w in words:
            if w not in NONE_WORDS:
                assert attribute_category(w) == category, (w, category)


@pytest.mark.parametrize("box, expected", [
    (Box(40, 40, 60, 60), (38, 38, 62, 62)),     # padded by 10 %
    (Box(0, 0, 4, 4), (0, 0, 10, 10)),           # grown to min_side, clipped at the edge
    (Box(90, 90, 100, 100), (87, 87, 100, 100)),
])
def test_crop_box(box: Box, expected) -> None:
    assert crop_box(box, 100, 100, 0.1, 16) == expected


@pytest.mark.slow
def test_clip_attributes_plumbing_with_random_weights() -> None:
    """Random-weight OpenCLIP: every object gets one word per category (min_score 0), and the batched
    result equals the same computation done by hand for one crop."""
    pytest.importorskip("open_clip")
    import torch
    from PIL import Image

    ann = ClipAttributes(random_init=True, min_score=0.0, categories=("material",), batch_size=2).load("cpu")
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    objects = (Object("0", "cup", Box(10, 10, 60, 70)), Object("1", "chair", Box(70, 20, 150, 110)),
               Object("2", "cup", Box(100, 80, 120, 100)))
    item, g = _scene(pixels, *objects)
    (out,) = ann([item], [g])
    for o in out.objects:
        cats = [a.category for a in o.attributes]
        assert cats == ["material"]  # material has no "none" word, so min_score 0 always gives one
        assert all(0 <= a.score <= 1 and a.name in CLIP_VOCABULARY[a.category] for a in o.attributes)
    model, preprocess, tok = ann.scorer.model, ann.scorer.preprocess, ann.scorer.tokenizer
    x1, y1, x2, y2 = crop_box(objects[1].box, 160, 120, 0.1, 16.0)
    with torch.inference_mode():
        f = model.encode_image(preprocess(Image.fromarray(pixels[y1:y2, x1:x2]))[None]).float()
        f = f / f.norm(dim=-1, keepdim=True)
        words = CLIP_VOCABULARY["material"]
        t = model.encode_text(tok([f"a photo of a {w} chair." for w in words])).float()
        t = t / t.norm(dim=-1, keepdim=True)
        probs = torch.softmax(model.logit_scale.exp() * f @ t.T, dim=-1)[0].numpy()
    got = next(a for a in out.objects[1].attributes if a.category == "material")
    assert got.name == words[int(np.argmax(probs))] and got.score == pytest.approx(float(probs.max()), abs=1e-3)
    assert out.provenance["stages"]["clip_attributes"]["models"][0]["origin"] == "random-init"


def test_clip_without_weights_is_missing_weights() -> None:
    pytest.importorskip("open_clip")
    from scene_graphs.perception.weights import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="open_clip_model.safetensors"):
        ClipAttributes().load("cpu")
    with pytest.raises(Exception, match="unknown categories"):
        ClipAttributes(random_init=True, categories=("smell",)).load("cpu")


def test_achromatic_pixels_count_half(colors: ColorAttributes) -> None:
    """A blue bus is mostly dark glass, grey shadow and white roof: blue still names it."""
    rows = {(15, 15, 15): 35, (30, 70, 200): 22, (128, 128, 128): 28, (250, 250, 250): 15}
    pixels = np.concatenate([np.tile(np.array(c, np.uint8), (n, 10, 1)) for c, n in rows.items()])
    item, g = _scene(pixels, Object("0", "bus", Box(0, 0, 10, 100), mask=Mask.from_array(np.ones((100, 10), bool))))
    (out,) = colors([item], [g])
    assert out.objects[0].attribute_names("color") == ["blue", "black", "gray", "white"]
    assert out.objects[0].attributes[0].score == pytest.approx(0.22 / 0.61, abs=0.01)
    plain = ColorAttributes(achromatic_weight=1.0).load("cpu")
    (out,) = plain([item], [g])
    assert out.objects[0].attribute_names("color") == ["black", "gray", "blue", "white"]


def test_a_small_far_colour_is_recorded_as_evidence(colors: ColorAttributes) -> None:
    """A red cup with its white inside: the white share is recorded (small), so programs can tell the cup
    is not one colour; a 3 % speck is not."""
    pixels = np.zeros((100, 20, 3), np.uint8)
    pixels[:] = (178, 34, 34)
    pixels[:20] = (250, 250, 250)   # 20 % white pixels, half-weighted: share 0.11
    pixels[20:23] = (30, 70, 200)   # 3 % blue
    item, g = _scene(pixels, Object("0", "cup", Box(0, 0, 20, 100), mask=Mask.from_array(np.ones((100, 20), bool))))
    (out,) = colors([item], [g])
    shares = {a.name: a.score for a in out.objects[0].attributes}
    assert set(shares) == {"red", "white"} and shares["white"] == pytest.approx(0.1 / 0.9, abs=0.01)


@pytest.mark.slow
def test_trimmed_text_encoding_equals_the_full_context() -> None:
    """CLIP's text tower is causal and pools at the end token: encoding prompts cut after the longest
    one's end gives encode_text's embeddings (random-weight ViT-B-32; prompts of different lengths)."""
    pytest.importorskip("open_clip")
    import torch

    from scene_graphs.perception.attributes import encode_text_trimmed, load_clip

    model, _, tokenizer = load_clip(ClipAttributes(random_init=True), "clip-vit-b-32", "cpu", True)
    tokens = tokenizer(["a photo of a dog.", "a close-up photo of a small fire hydrant on a wet street.", "cup"])
    assert int((tokens != 0).sum(dim=1).max()) < tokens.shape[1] // 4
    with torch.inference_mode():
        full, trimmed = model.encode_text(tokens), encode_text_trimmed(model, tokens)
    assert trimmed.shape == full.shape
    assert torch.allclose(trimmed, full, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(trimmed[0], trimmed[1], atol=1e-3)  # different prompts stay different
