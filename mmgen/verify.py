"""``verify``: re-run each stored QA record's program on its scene graph and report mismatches.

For every record: the program exists, the plan is still one of the program's valid candidates for the
graph, ``solve`` gives the stored value, and regenerating the image with the stored seed and config
gives the record byte for byte.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from scene_graphs.io import graph_files, read_graphs, read_jsonl


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

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
    from programs.base import QA, GraphView, ProgramConfig, load_all

    qa_dir, sg_src = Path(qa_dir), Path(sg_src)
    registry = load_all()
    report = VerifyReport()
    manifest_path = qa_dir / "manifest.json"
    config_dict = json.loads(manifest_path.read_text())["config"] if manifest_path.exists() else None
    for graph_paths, qa_paths in _pairs(qa_dir, sg_src):
        graphs = {g.image_id: g for p in graph_paths for g in read_graphs(p)}
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for p in qa_paths:
            for rec in read_jsonl(p):
                by_image[(rec["images"][0], rec["program"])].append(rec)
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
            program = registry[pid]()
            config = ProgramConfig(**(config_dict or {}), **({} if config_dict else {"seed": records[0]["seed"]}))
            view = GraphView(graph, config)
            candidates = {json.dumps(c, sort_keys=True) for c in program.candidates(view)}
            for rec in records:
                if json.dumps(rec["plan"], sort_keys=True) not in candidates:
                    report.problems.append(f"{rec['id']}: plan {rec['plan']} is not valid for this graph")
                    continue
                value = program.solve(view, rec["plan"])
                if json.loads(json.dumps(value)) != rec["value"]:
                    report.problems.append(f"{rec['id']}: stored answer {rec['value']!r}, graph gives {value!r}")
            regenerated = [q.to_dict() for q in program.generate([GraphView(graph, config)], config)]
            stored = [QA.from_dict(r).to_dict() for r in records]
            if json.loads(json.dumps(regenerated)) != stored:
                report.problems.append(f"{where}: regenerating with the stored seed gives different records")
            if len(report.problems) >= max_problems:
                return report
    return report
