"""Profiles, TOML config and overrides, optional stages, and `mmgen annotate` end to end."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from scene_graphs.io import read_graphs, read_jsonl
from scene_graphs.perception.base import Annotator
from scene_graphs.perception.images import item_from_array
from scene_graphs.perception.pipeline import Pipeline
from scene_graphs.perception.profiles import PROFILES, ConfigError, PerceptionConfig, build_pipeline, make_config
from scene_graphs.perception.weights import MissingWeightsError
from scene_graphs.schema import validate_against_schema

SHARED = Path(os.environ.get("MMGEN_WEIGHTS_DIR", "/nonexistent"))
HAVE = all((SHARED / f).is_file() for f in ("yolo11n_int8.tflite", "yolo11n-seg_full_integer_quant.tflite"))
needs_weights = pytest.mark.skipif(not HAVE, reason="MMGEN_WEIGHTS_DIR does not hold the YOLO11n TFLite files")


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MMGEN_OFFLINE", "1")
    monkeypatch.setenv("MMGEN_CACHE_DIR", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------ config
def test_profiles() -> None:
    fast, full = make_config("fast"), make_config("full")
    assert fast.enabled_stages() == ["detect", "segment", "color", "relations", "ocr"]
    assert full.enabled_stages() == ["detect", "segment", "depth", "color", "clip_attributes", "relations",
                                     "clip_relations", "ocr"]
    assert {n for n, s in full.stages.items() if s.get("optional")} == {"depth", "clip_attributes", "clip_relations"}
    assert make_config().profile == "fast" and set(PROFILES) == {"fast", "full", "quality"}


def test_toml_config_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('profile = "full"\nbatch_size = 4\n[stages.detect]\nconf = 0.4\nmax_objects = 20\n'
                 '[stages.depth]\nenabled = false\n[weights]\nyolo11n = "/models/y.pt"\n')
    cfg = make_config(config_file=f, overrides=["detect.conf=0.5", "relations.predicates=['on', 'under']",
                                                "ocr.model=rapidocr-ppocr"], skip=["ocr"])
    assert cfg.profile == "full" and cfg.batch_size == 4
    assert cfg.stages["detect"]["conf"] == 0.5 and cfg.stages["detect"]["max_objects"] == 20
    assert cfg.stages["relations"]["predicates"] == ["on", "under"]
    assert "depth" not in cfg.enabled_stages() and "ocr" not in cfg.enabled_stages()
    assert cfg.weights == {"yolo11n": "/models/y.pt"}
    # the command line profile wins over the file's
    assert make_config("fast", config_file=f).profile == "fast"
    only = make_config("full", only=["detect", "relations"])
    assert only.enabled_stages() == ["detect", "relations"]
    assert cfg.to_dict()["stages"]["detect"]["conf"] == 0.5


@pytest.mark.parametrize("text, message", [
    ('[stages.detect]\nconff = 1\n', "stage 'detect' has no option 'conff'"),
    ('[stages.teleport]\nx = 1\n', "unknown stage 'teleport'"),
    ('colour = "red"\n', "unknown key(s) colour"),
    ('profile = "slow"\n', "unknown profile 'slow'"),
    ('[stages.depth]\nenabled = "no"\n', "enabled must be true or false"),
    ('[stages\n', "invalid TOML"),
])
def test_config_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        make_config(config_file=f)
    assert message in str(info.value)
    if "profile" not in text:
        assert str(f) in str(info.value)


@pytest.mark.parametrize("override, message", [
    ("detect.conf", "expected STAGE.KEY=VALUE"), ("conf=0.3", "expected STAGE.KEY=VALUE"),
    ("detect.color=1", "no option 'color'"),
])
def test_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(overrides=[override])


def test_wrong_option_type_is_caught_when_building() -> None:
    cfg = make_config(overrides=["detect.conf=high"])
    with pytest.raises(Exception, match="'conf' must be a number"):
        build_pipeline(cfg)


# ------------------------------------------------------------------------------------ pipeline
class _Count(Annotator):
    name = "count"
    fills = frozenset({"objects"})
    defaults = {"n": 0}

    def process(self, batch, graphs):
        return [self.stamp(g) for g in graphs]


class _NeedsDepth(Annotator):
    name = "needs_depth"
    fills = frozenset({"relations"})
    needs = frozenset({"depth"})

    def process(self, batch, graphs):  # pragma: no cover - never reached
        raise AssertionError


class _OptionalMissing(Annotator):
    name = "opt"
    fills = frozenset({"depth"})
    default_optional = True

    def _load(self, device):
        from scene_graphs.perception.weights import resolve

        resolve("depth-anything-v2-small")  # not here, offline


class _WaitsForReader(Annotator):
    """First stage: waits (at most 10 s) for the later stage's read-ahead to start."""

    name = "waits"
    fills = frozenset({"objects"})

    def _load(self, device):
        import threading

        self.started = threading.Event()
        self.saw_reader: list[bool] = []

    def process(self, batch, graphs):
        self.saw_reader.append(self.started.wait(10))
        return [self.stamp(g) for g in graphs]


class _Reader(Annotator):
    """Reads pixels ahead (no graph field): the mean of each image, as text would be read."""

    name = "reader"
    fills = frozenset({"text"})
    reads_ahead = True

    def __init__(self, waiting: _WaitsForReader | None = None, **kw):
        super().__init__(**kw)
        self.waiting = waiting

    def read_ahead(self, batch):
        import threading

        if self.waiting is not None:
            self.waiting.started.set()
        return [(float(it.pixels.mean()), threading.current_thread().name) for it in batch]

    def process(self, batch, graphs, ahead=None):
        ahead = ahead if ahead is not None else self.read_ahead(batch)
        return [self.stamp(g, meta={**g.meta, "mean": m}) for g, (m, _) in zip(graphs, ahead)]


def test_read_ahead_overlaps_the_earlier_stages_and_changes_no_graph() -> None:
    items = [item_from_array(np.full((4, 4, 3), v, np.uint8), f"{v}.png") for v in (3, 200)]
    first = _WaitsForReader()
    together = Pipeline([first, _Reader(first)]).load("cpu").annotate(items)
    assert first.saw_reader == [True]  # the reader had started while the first stage ran
    in_turn = _Reader()
    in_turn.reads_ahead = False  # read inside its own turn, after the first stage
    alone = Pipeline([_WaitsForReader(), in_turn]).load("cpu")
    alone.stages[0].started.set()
    assert [g.to_dict() for g in together] == [g.to_dict() for g in alone.annotate(items)]
    assert [g.meta["mean"] for g in together] == [3.0, 200.0]


def test_optional_stage_is_skipped_with_a_warning_and_its_field_not_listed(caplog: pytest.LogCaptureFixture) -> None:
    p = Pipeline([_Count(), _OptionalMissing()], {"profile": "test"})
    with caplog.at_level(logging.WARNING, logger="scene_graphs.perception"):
        p.load("cpu")
    assert [s.name for s in p.stages] == ["count"] and "opt" in p.skipped
    assert "skipping optional stage 'opt'" in caplog.text and "Depth-Anything-V2-Small-hf" in caplog.text
    (g,) = p.annotate([item_from_array(np.zeros((8, 8, 3), np.uint8), "a.png")])
    assert g.fields == {"objects"} and "opt" in g.provenance["skipped"] and g.provenance["profile"] == "test"


def test_required_stage_missing_weights_raises() -> None:
    with pytest.raises(MissingWeightsError):
        Pipeline([_OptionalMissing(optional=False)]).load("cpu")


def test_stage_order_is_checked() -> None:
    with pytest.raises(ValueError, match="needs depth, which no earlier stage fills"):
        Pipeline([_Count(), _NeedsDepth()]).load("cpu")
    with pytest.raises(ValueError, match="optional stage it relies on was skipped"):
        Pipeline([_OptionalMissing(), _NeedsDepth()]).load("cpu")


def test_a_failing_image_does_not_sink_its_batch() -> None:
    class Picky(_Count):
        def process(self, batch, graphs):
            if any(it.path == "bad.png" for it in batch):
                raise RuntimeError("cannot handle bad.png")
            return super().process(batch, graphs)

    p = Pipeline([Picky()]).load("cpu")
    items = [item_from_array(np.zeros((4, 4, 3), np.uint8), n) for n in ("a.png", "bad.png", "c.png")]
    out = p.annotate_safely(items)
    assert [type(r).__name__ for r in out] == ["SceneGraph", "ImageFailure", "SceneGraph"]
    assert "cannot handle bad.png" in out[1].reason and out[1].stage == "annotate"


# ------------------------------------------------------------------------------------ CLI
def _images(folder: Path) -> Path:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    folder.mkdir()
    shutil.copy(assets / "bus.jpg", folder / "bus.jpg")
    (folder / "sub").mkdir()
    shutil.copy(assets / "zidane.jpg", folder / "sub" / "zidane.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(folder / "red.png")
    return folder


def _graphs(out: Path) -> list:
    return [g for p in sorted(out.glob("part-*.jsonl")) for g in read_graphs(p)]


@needs_weights
@pytest.mark.slow
def test_annotate_command_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ultralytics")
    from mmgen.cli import main

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(SHARED))
    images, out = _images(tmp_path / "imgs"), tmp_path / "sg"
    args = ["annotate", str(images), "-o", str(out), "--shard-size", "2", "--batch-size", "2", "--device", "cpu",
            "--skip", "ocr"]
    runner = CliRunner()
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    # 4 files sorted by relative path: broken.jpg, bus.jpg | red.png, sub/zidane.jpg
    assert sorted(p.name for p in out.glob("part-*.jsonl")) == ["part-00000.jsonl", "part-00001.jsonl"]
    graphs = _graphs(out)
    assert [g.path for g in graphs] == ["bus.jpg", "red.png", "sub/zidane.jpg"]
    for p in sorted(out.glob("part-*.jsonl")):
        for record in read_jsonl(p):
            validate_against_schema(record)
    bus = graphs[0]
    assert bus.fields == {"objects", "masks", "attributes", "relations"}
    assert sum(o.label == "person" for o in bus.objects) >= 3
    assert "blue" in next(o for o in bus.objects if o.label == "bus").attribute_names("color")
    assert bus.relations and bus.provenance["profile"] == "fast" and "mmgen" in bus.provenance
    assert graphs[1].objects == () and graphs[1].has("objects")  # a plain red image: looked, nothing
    errors = list(read_jsonl(out / "errors.jsonl"))
    assert [e["path"] for e in errors] == ["broken.jpg"] and "not an image" in errors[0]["error"]
    summary = json.loads((out / "annotate.json").read_text())
    assert (summary["images"], summary["graphs"], summary["errors"], summary["shards"]) == (4, 3, 1, 2)
    assert summary["stages"]["detect"]["models"][0]["file"] == "yolo11n_int8.tflite"

    # a rerun skips both complete shards and changes nothing
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    res = runner.invoke(main, args)
    assert res.exit_code == 0 and "complete, skipping" in res.output
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")} == before
    assert json.loads((out / "annotate.json").read_text())["stages"] == summary["stages"]

    # a new image at the end redoes only the shard it lands in; other settings redo everything
    Image.new("RGB", (64, 48), (20, 20, 200)).save(images / "zz.png")
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}
    assert after["part-00000.jsonl"] == before["part-00000.jsonl"] and after["part-00001.jsonl"] == before["part-00001.jsonl"]
    assert "part-00002.jsonl" in after and len(_graphs(out)) == 4

    # --limit shrinks the input: shards beyond it are removed
    res = runner.invoke(main, args + ["--limit", "2"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.done.json", "part-00000.jsonl"]


@needs_weights
def test_annotate_command_only_some_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ultralytics")
    from mmgen.cli import main

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(SHARED))
    images, out = _images(tmp_path / "imgs"), tmp_path / "sg"
    res = CliRunner().invoke(main, ["annotate", str(images), "-o", str(out), "--stage", "detect", "--stage", "relations",
                                    "--set", "detect.conf=0.5", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    graphs = _graphs(out)
    assert all(g.fields == {"objects", "relations"} for g in graphs)
    assert all(o.score >= 0.5 for g in graphs for o in g.objects)
    assert graphs[0].provenance["stages"]["detect"]["options"]["conf"] == 0.5


def test_annotate_command_missing_weights_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmgen.cli import main

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(tmp_path / "empty"))
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    res = CliRunner().invoke(main, ["annotate", str(tmp_path / "imgs"), "-o", str(tmp_path / "sg"), "--stage", "detect"])
    assert res.exit_code == 1
    assert "yolo11n_int8.tflite" in res.output and "cd49cd708633a6a2" in res.output and "--weights" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("args, message", [
    (["--weights", "nonsense=/x"], "neither a model"),
    (["--weights", "yolo11n"], "expected NAME=PATH"),
    (["--set", "detect.nope=1"], "no option 'nope'"),
])
def test_annotate_command_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    from mmgen.cli import main

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    res = CliRunner().invoke(main, ["annotate", str(tmp_path / "imgs"), "-o", str(tmp_path / "sg"), *args])
    assert res.exit_code != 0 and message in res.output


def test_perception_config_for_profile_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        PerceptionConfig.for_profile("medium")


@needs_weights
@pytest.mark.slow
def test_annotate_command_with_depth_writes_the_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Depth through the CLI (random Depth Anything weights: plumbing only): maps in the shard's .npz."""
    pytest.importorskip("transformers")
    from mmgen.cli import main

    monkeypatch.setenv("MMGEN_WEIGHTS_DIR", str(SHARED))
    images, out = _images(tmp_path / "imgs"), tmp_path / "sg"
    res = CliRunner().invoke(main, ["annotate", str(images), "-o", str(out), "--profile", "full", "--device", "cpu",
                                    "--stage", "detect", "--stage", "depth", "--stage", "relations",
                                    "--set", "depth.random_init=true", "--set", "depth.input_size=56",
                                    "--set", "depth.map_max_side=48"])
    assert res.exit_code == 0, res.output
    assert (out / "part-00000.depth.npz").is_file()
    graphs = _graphs(out)
    assert len(graphs) == 3 and all(g.has("objects", "depth", "relations") for g in graphs)
    for g in graphs:
        assert g.depth is not None and g.depth.larger_is_nearer and max(g.depth.shape) <= 48
        assert all(o.depth == pytest.approx(g.depth.median_in(o.box, g.width, g.height, o.mask)) for o in g.objects)
    assert graphs[0].provenance["stages"]["depth"]["models"][0]["origin"] == "random-init"


# ------------------------------------------------------------------------------------ start-up cost
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "images"


def test_nms_indices_keeps_what_torchvision_keeps() -> None:
    """The NumPy NMS that spares annotate the torchvision import keeps the same boxes in the same order,
    ties between equal scores (frequent with INT8 models) and duplicate boxes included."""
    torch = pytest.importorskip("torch")
    tv_ops = pytest.importorskip("torchvision.ops")
    from scene_graphs.perception.detect import nms_indices

    rng = np.random.default_rng(7)
    for trial in range(400):
        n = int(rng.integers(1, 40))
        xy, wh = rng.uniform(0, 100, (n, 2)), rng.uniform(0, 40, (n, 2))
        if trial % 3 == 0:
            xy, wh = np.round(xy), np.round(wh)
        boxes = np.concatenate([xy, xy + wh], axis=1)
        if trial % 5 == 0:
            boxes[: n // 2] = boxes[n // 2: 2 * (n // 2)]
        scores = np.round(rng.uniform(0, 1, n) * 8) / 8 if trial % 2 else rng.uniform(0, 1, n)
        thr = float(rng.choice([0.3, 0.45, 0.5, 0.7]))
        expected = tv_ops.nms(torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
                              thr).tolist()
        assert nms_indices(boxes, scores, thr) == expected, trial
    assert nms_indices(np.zeros((0, 4)), np.zeros(0), 0.5) == []


_DETECT_SEGMENT = """
import json, sys
if sys.argv[1] == "with":
    import torchvision  # Ultralytics then uses torchvision's NMS, as it did before
from scene_graphs.perception.images import load_image
from scene_graphs.perception.profiles import build_pipeline, make_config
root = sys.argv[2]
items = [load_image(f"{root}/{name}", root) for name in sys.argv[3:]]
pipeline = build_pipeline(make_config("fast", only=["detect", "segment"])).load("cpu")
graphs = pipeline.annotate(items)
print(json.dumps({"torchvision": "torchvision" in sys.modules, "dynamo": "torch._dynamo" in sys.modules,
                  "graphs": [g.to_dict() for g in graphs]}))
"""


@needs_weights
@pytest.mark.slow
def test_detect_and_segment_import_no_torchvision_and_give_the_same_graphs(tmp_path: Path) -> None:
    """Detection and segmentation on the CPU never import torchvision (2 s of CPU for torch._dynamo, the
    largest start-up cost of annotate), and give the graphs they give with it imported: street_bus.jpg's
    segmenter returns two person boxes of equal INT8 score, where tie-breaking decides the mask."""
    import subprocess
    import sys

    names = ["street_bus.jpg", "people_cameraman.jpg", "indoor_coffee_cup.jpg"]
    env = {**os.environ, "MMGEN_WEIGHTS_DIR": str(SHARED), "MMGEN_OFFLINE": "1"}
    runs = {}
    for mode in ("without", "with"):
        res = subprocess.run([sys.executable, "-c", _DETECT_SEGMENT, mode, str(PHOTOS), *names], env=env,
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-2000:]
        runs[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    assert not runs["without"]["torchvision"] and not runs["without"]["dynamo"]
    assert runs["with"]["torchvision"]
    assert runs["without"]["graphs"] == runs["with"]["graphs"]
    assert sum(len(g["objects"]) for g in runs["without"]["graphs"]) >= 5


_FREEZE = """
import gc, weakref
from scene_graphs.perception.base import Annotator
from scene_graphs.perception.pipeline import Pipeline

class Fills(Annotator):
    name = "fills"
    fills = frozenset({"objects"})

before = gc.get_freeze_count()
Pipeline([Fills()]).load("cpu")
first = gc.get_freeze_count()
Pipeline([Fills()]).load("cpu")

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a                      # a cycle made after loading
alive = weakref.ref(a)
del a, b
gc.collect()
print(before, first, gc.get_freeze_count(), alive() is None)
"""


def test_loading_freezes_what_is_alive_once_and_later_cycles_are_still_collected(tmp_path: Path) -> None:
    """After the first load in a process the objects then alive are frozen (the collector skips them,
    also at exit); a second pipeline freezes nothing more, and garbage made afterwards is collected."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _FREEZE], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    before, first, second, collected = res.stdout.split()
    assert int(before) == 0 and int(first) > 1000
    assert int(second) == int(first) and collected == "True"
