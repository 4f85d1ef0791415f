"""``verify``: re-run each stored QA record's program on its scene graph and report mismatches.

For every record: the program exists, the plan is still one of the program's valid candidates for the
graph, ``solve`` gives the stored value, and regenerating the image with the stored seed and config
gives the record byte for byte.

Records rewritten by ``mmgen evolve`` (an ``evolved`` field) get the plan and answer checks only and
are counted as not re-derivable. Output of ``mmgen curate`` (or evolve) may have dropped records, so
there the stored records must be an ordered subset of the regenerated ones.

Multi-image records (``images`` lists a set) are checked the same way on the graphs of their whole
set, in the record's order. A multi-image run (manifest stage ``generate-multi``) is checked shard
by shard: the graphs are indexed once (id and byte offset) and only those of a shard's sets are
loaded, so memory stays bounded; a folder without a manifest is checked with all graphs loaded,
as for single-image records.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scene_graphs.io import graph_files, read_graphs, read_jsonl


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    not_rederivable: int = 0
    """Evolved records: plan and answer checked, but their rewritten text cannot be regenerated."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _qa_files(qa_dir: Path) -> list[Path]:
    if qa_dir.is_file():
        return [qa_dir]
    return sorted(p for p in qa_dir.glob("part-*.jsonl"))


def _pairs(qa_dir: Path, sg_src: Path) -> Iterator[tuple[list[Path], list[Path]]]:
    """(graph shards, QA shards) groups that can be checked together in bounded memory."""
    manifest = qa_dir / "manifest.json" if qa_dir.is_dir() else None
    if manifest is not None and manifest.exists():
        m = json.loads(manifest.read_text())
        by_name = {p.resolve(): p for p in graph_files(sg_src)}
        for inp, outp in zip(m["inputs"], m["outputs"]):
            g = by_name.get(Path(inp).resolve())
            if g is None:  # the graphs moved: fall back to matching by position
                g = graph_files(sg_src)[m["inputs"].index(inp)]
            if (qa_dir / outp).exists():
                yield [g], [qa_dir / outp]
    else:
        yield graph_files(sg_src), _qa_files(qa_dir)


def verify(qa_dir: str | Path, sg_src: str | Path, max_problems: int = 1000) -> VerifyReport:
    from programs.base import load_all

    qa_dir, sg_src = Path(qa_dir), Path(sg_src)
    registry = load_all()
    report = VerifyReport()
    manifest_path = qa_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    config_dict = manifest["config"] if manifest_path.exists() else None
    subset_ok = manifest.get("stage") in ("curate", "evolve")
    if (manifest.get("source_stage") or manifest.get("stage")) == "generate-multi":
        return _verify_multi_run(qa_dir, sg_src, registry, config_dict, report, max_problems, subset_ok)
    for graph_paths, qa_paths in _pairs(qa_dir, sg_src):
        graphs = {g.image_id: g for p in graph_paths for g in read_graphs(p)}
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        by_set: dict[tuple[tuple[str, ...], str], list[dict[str, Any]]] = defaultdict(list)
        for p in qa_paths:
            for rec in read_jsonl(p):
                if _is_multi(rec, registry):
                    by_set[(tuple(rec["images"]), rec["program"])].append(rec)
                    continue
                by_image[(rec["images"][0], rec["program"])].append(rec)
        if _check_sets(sorted(by_set.items()), graphs.get, registry, config_dict, report, max_problems, subset_ok):
            return report
        for (image, pid), records in sorted(by_image.items()):
            report.checked += len(records)
            where = f"image {image}, program {pid}"
            if pid not in registry:
                report.problems.append(f"{where}: unknown program")
                continue
            graph = graphs.get(image)
            if graph is None:
                report.problems.append(f"{where}: no scene graph with this image id")
                continue
            _check_group(registry[pid](), [graph], records, where, config_dict, report, subset_ok)
            if len(report.problems) >= max_problems:
                return report
    return report


# --------------------------------------------------------------------------------------- multi-image
def _is_multi(rec: dict[str, Any], registry: dict[str, Any]) -> bool:
    """A record about an image set: its program is a multi-image one, or it lists several images."""
    cls = registry.get(rec.get("program"))
    return len(rec.get("images") or ()) != 1 or (cls is not None and cls.multi_image)


def _check_group(program: Any, graphs: list[Any], records: list[dict[str, Any]], where: str,
                 config_dict: dict[str, Any] | None, report: VerifyReport, subset_ok: bool) -> None:
    """Plan validity, answer and regeneration checks for the records of one program on one image (set)."""
    from programs.base import QA, GraphView, ProgramConfig

    config = ProgramConfig(**(config_dict or {}), **({} if config_dict else {"seed": records[0]["seed"]}))
    subject = program.subject([GraphView(g, config) for g in graphs])
    candidates = {json.dumps(c, sort_keys=True) for c in program.candidates(subject)}
    for rec in records:
        if json.dumps(rec["plan"], sort_keys=True) not in candidates:
            report.problems.append(f"{rec['id']}: plan {rec['plan']} is not valid for this graph")
            continue
        value = program.solve(subject, rec["plan"])
        if json.loads(json.dumps(value)) != rec["value"]:
            report.problems.append(f"{rec['id']}: stored answer {rec['value']!r}, the graph gives {value!r}")
    fresh = [r for r in records if "evolved" not in r]
    report.not_rederivable += len(records) - len(fresh)
    if not fresh:
        return
    regenerated = json.loads(json.dumps([q.to_dict() for q in program.generate(
        [GraphView(g, config) for g in graphs], config)]))
    stored = [QA.from_dict(r).to_dict() for r in fresh]
    if subset_ok:
        it = iter(regenerated)
        same = all(any(s == r for r in it) for s in stored)  # an ordered subset
    else:
        same = regenerated == stored
    if not same:
        report.problems.append(f"{where}: regenerating with the stored seed gives different records")


def _check_sets(groups: Any, get_graph: Callable[[str], Any], registry: dict[str, Any],
                config_dict: dict[str, Any] | None, report: VerifyReport, max_problems: int,
                subset_ok: bool = False) -> bool:
    """Check ``((images, program), records)`` groups; returns True once ``max_problems`` is reached."""

    for (images, pid), records in groups:
        report.checked += len(records)
        where = f"images {'+'.join(images)}, program {pid}"
        cls = registry.get(pid)
        if cls is None:
            report.problems.append(f"{where}: unknown program")
        elif not cls.multi_image:
            report.problems.append(f"{where}: a single-image program cannot answer about {len(images)} images")
        elif len(set(images)) != len(images) or not 2 <= len(images) <= 6:
            report.problems.append(f"{where}: an image set has 2-6 distinct images")
        else:
            graphs = [get_graph(i) for i in images]
            missing = [i for i, g in zip(images, graphs) if g is None]
            if missing:
                report.problems.append(f"{where}: no scene graph with image id {missing[0]}")
            else:
                _check_group(cls(), graphs, records, where, config_dict, report, subset_ok)
        if len(report.problems) >= max_problems:
            return True
    return False


def _consecutive_groups(path: Path) -> Iterator[tuple[tuple[tuple[str, ...], str], list[dict[str, Any]]]]:
    """Runs of records with the same (images, program), in file order (how the stage writes them)."""
    key: tuple[tuple[str, ...], str] | None = None
    run: list[dict[str, Any]] = []
    for rec in read_jsonl(path):
        k = (tuple(rec["images"]), rec["program"])
        if k != key and run:
            yield key, run  # type: ignore[misc]
            run = []
        key = k
        run.append(rec)
    if run:
        yield key, run  # type: ignore[misc]


def _verify_multi_run(qa_dir: Path, sg_src: Path, registry: dict[str, Any], config_dict: dict[str, Any] | None,
                      report: VerifyReport, max_problems: int, subset_ok: bool = False) -> VerifyReport:
    """A ``generate --multi`` output, shard by shard, loading only the graphs each shard needs."""
    import bisect

    from .generate_multi import GraphStore, build_index

    inputs = graph_files(sg_src)
    index = build_index(inputs)
    paths = [str(p) for p in inputs]

    def locate(image_id: str) -> tuple[str, int] | None:
        i = bisect.bisect_left(index.ids, image_id)
        if i == len(index.ids) or index.ids[i] != image_id:
            return None
        return paths[int(index.shard[i])], int(index.offset[i])

    for qa_path in _qa_files(qa_dir):
        needed = {i for rec in read_jsonl(qa_path) for i in rec["images"]}
        locations = {i: loc for i in sorted(needed) if (loc := locate(i)) is not None}
        with GraphStore(locations) as store:
            def get(image_id: str, store: GraphStore = store, known: dict = locations) -> Any:
                return store.get(image_id) if image_id in known else None
            if _check_sets(_consecutive_groups(qa_path), get, registry, config_dict, report, max_problems, subset_ok):
                return report
    return report
