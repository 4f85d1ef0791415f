"""``export`` on the engine: the bytes of the one-process writer, for any number of workers and ranks; a
rerun is a no-op; a run interrupted or killed while rendering is finished by the next one, same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from mmgen.engine import EngineOptions
from mmgen.engine.core import EngineError
from mmgen.export import ExportError, ExportOptions, ExportSummary, _counted, _rendered, export, get_format, iter_qa
from mmgen.export.stage import ExportWorker, work_folder
from scene_graphs.io import write_jsonl
from tests.test_export import IMAGES, sample_qa_dir

ROOT = Path(__file__).resolve().parents[1]

CASES = {  # name: (format, options)
    "llava-val": ("llava", dict(val_fraction=0.3)),
    "sharegpt-system": ("sharegpt", dict(system_prompt="Be brief.", jsonl=True)),
    "messages-merged": ("messages", dict(merge_per_image=True)),
    "openai": ("openai", dict(path_prefix="https://example.org/img/")),
    "provision-rationale": ("provision", dict(rationale=True)),
    "qwen2-vl": (None, dict(target="qwen2-vl", val_fraction=0.2)),
    "llamafactory": (None, dict(target="llamafactory")),
    "hf-embed": ("hf", dict(val_fraction=0.3, system_prompt="Be brief.")),
    "hf-path": ("hf", dict(hf_images="path")),
}


@pytest.fixture(scope="module")
def sharded_qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample QA records in four shards (each image's records in one shard, as generate writes them)."""
    records = [qa for qa, _ in iter_qa(sample_qa_dir(tmp_path_factory))]
    images = sorted({qa.images[0] for qa in records})
    folder = tmp_path_factory.mktemp("sharded")
    for shard in range(4):
        mine = {im for i, im in enumerate(images) if i * 4 // len(images) == shard}
        write_jsonl(folder / f"part-{shard:05d}.jsonl", (qa.to_dict() for qa in records if qa.images[0] in mine))
    return folder


def _files(out: Path) -> dict[str, bytes]:
    """Every file below ``out`` (the folder's own path, which trainer files name, replaced by ``OUT``)."""
    return {str(p.relative_to(out)): p.read_bytes().replace(str(out.resolve()).encode(), b"OUT")
            for p in sorted(out.rglob("*")) if p.is_file()}


def _options(opts: dict) -> ExportOptions:
    return ExportOptions(image_root=IMAGES, **opts)


def _one_process(src: Path, out: Path, fmt: str | None, options: ExportOptions) -> dict[str, bytes]:
    """What the format writes from the rendered records in one pass (the export before the engine)."""
    from mmgen.export.targets import get_target, resolve

    fmt, options = resolve(get_target(options.target), fmt, options)
    format_ = get_format(fmt)
    summary = ExportSummary(format_.name)
    items = _rendered([(p, None) for p in sorted(src.glob("part-*.jsonl"))], options, summary)
    if options.merge_per_image:
        from mmgen.export import merged_per_image

        items = merged_per_image(items, options, summary)
    out.mkdir()
    format_.write(_counted(items, summary, Counter()), out, options)
    return _files(out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_workers_give_the_one_process_bytes(case: str, sharded_qa: Path, tmp_path: Path) -> None:
    fmt, opts = CASES[case]
    expected = _one_process(sharded_qa, tmp_path / "plain", fmt, _options(opts))
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        summary = export(sharded_qa, out, fmt, _options(opts), EngineOptions(workers=workers))
        files = _files(out)
        assert {k: v for k, v in files.items() if k in expected} == expected
        assert summary.records == sum(summary.per_split.values()) > 0
        assert not work_folder(out).exists()
    assert _files(tmp_path / "w1") == _files(tmp_path / "w2")


def test_rerun_is_a_no_op(sharded_qa: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    first = export(sharded_qa, out, "llava", _options({"val_fraction": 0.3}))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(ExportWorker, "run", refuse)
    again = export(sharded_qa, out, "llava", _options({"val_fraction": 0.3}))
    assert again.to_dict() == first.to_dict()
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    (out / "val.json").write_text("[]\n")  # a written file changed: written again
    monkeypatch.undo()
    export(sharded_qa, out, "llava", _options({"val_fraction": 0.3}))
    assert (out / "val.json").stat().st_size > 10


def test_options_changed_rewrite_everything(sharded_qa: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export(sharded_qa, out, "llava", _options({}))
    export(sharded_qa, out, "llava", _options({"rationale": True}))
    fresh = tmp_path / "fresh"
    export(sharded_qa, fresh, "llava", _options({"rationale": True}))
    assert (out / "train.json").read_bytes() == (fresh / "train.json").read_bytes()


def test_an_interrupt_while_rendering_then_a_rerun(sharded_qa: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    run = ExportWorker.run
    done: list[str] = []

    def stop_at_third(self, payload, files):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(payload["src"])
        return run(self, payload, files)

    monkeypatch.setattr(ExportWorker, "run", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        export(sharded_qa, out, "sharegpt", _options({"val_fraction": 0.2}))
    assert not (out / "train.json").exists() and len(list(work_folder(out).glob("part-*.done.json"))) == 2
    monkeypatch.setattr(ExportWorker, "run", run)
    done.clear()
    export(sharded_qa, out, "sharegpt", _options({"val_fraction": 0.2}))
    fresh = tmp_path / "fresh"
    export(sharded_qa, fresh, "sharegpt", _options({"val_fraction": 0.2}))
    assert {k: v for k, v in _files(out).items() if k != "export.json"} == \
        {k: v for k, v in _files(fresh).items() if k != "export.json"}


_SLOW = """
import sys, time
from pathlib import Path
from mmgen.engine import EngineOptions
from mmgen.export import ExportOptions, export
from mmgen.export.stage import ExportWorker
run = ExportWorker.run
def slow(self, payload, files):
    time.sleep(0.8)
    return run(self, payload, files)
ExportWorker.run = slow
export(sys.argv[1], sys.argv[2], "llava", ExportOptions(image_root=Path(sys.argv[3])),
       EngineOptions(workers=int(sys.argv[4])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9")
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_while_rendering_then_a_rerun_gives_the_same_bytes(sharded_qa: Path, tmp_path: Path,
                                                                  workers: int) -> None:
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW, str(sharded_qa), str(out), str(IMAGES), str(workers)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and \
            not list(work_folder(out).glob("part-*.done.json")):
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "train.json").exists()
    export(sharded_qa, out, "llava", _options({}))
    fresh = tmp_path / "fresh"
    export(sharded_qa, fresh, "llava", _options({}))
    assert (out / "train.json").read_bytes() == (fresh / "train.json").read_bytes()
    assert not work_folder(out).exists()


def test_ranks_write_the_files_once_every_shard_is_rendered(sharded_qa: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(EngineError, match="not rendered yet"):
        export(sharded_qa, out, "llava", _options({}), EngineOptions(rank=0, world_size=2))
    assert not (out / "train.json").exists()
    export(sharded_qa, out, "llava", _options({}), EngineOptions(rank=1, world_size=2))
    fresh = tmp_path / "fresh"
    export(sharded_qa, fresh, "llava", _options({}))
    assert (out / "train.json").read_bytes() == (fresh / "train.json").read_bytes()


def test_limit_takes_the_first_records(sharded_qa: Path, tmp_path: Path) -> None:
    summary = export(sharded_qa, tmp_path / "out", "llava", _options({}), EngineOptions(limit=7))
    assert summary.records == 7


def test_an_image_across_two_shards_is_refused_when_merging(sharded_qa: Path, tmp_path: Path) -> None:
    lines = (sharded_qa / "part-00000.jsonl").read_text().splitlines(keepends=True)
    src = tmp_path / "qa"
    src.mkdir()
    (src / "part-00000.jsonl").write_text("".join(lines[:-1]))
    (src / "part-00001.jsonl").write_text(lines[-1])
    with pytest.raises(ExportError, match="not together"):
        export(src, tmp_path / "out", "llava", _options({"merge_per_image": True}))
    export(src, tmp_path / "plain", "llava", _options({}))  # without merging the split does not matter
