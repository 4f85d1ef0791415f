"""The ``evolve`` stage: MMEvol-style rewriting of QA records by a language model, with elimination.

Each round, every record still in play is rewritten in one direction drawn for it (seeded by
``(seed, root record id, round)``, so the draw never depends on order or workers):

* ``perception``: finer visual detail (objects named by attributes, position, relations);
* ``reasoning``: two to four explicit steps (kept in ``rationale``) before the answer;
* ``interaction``: a new format drawn among matching, fill-in, ordering and short essay.

The model sees the scene graph as quoted data (:mod:`mmgen.llm.prompts`). A rewrite then has to pass

1. the **guard** (:mod:`mmgen.llm.guard`): rule checks that the original answer's facts still hold
   against the graph (counts, yes/no, labels, colours...), no request needed;
2. **elimination**: the model judges whether the rewrite improved on its parent and needs the image.

A rewrite that fails either is dropped (``dropped.jsonl`` keeps it with the reason) and its lineage
stops, as in MMEvol; a surviving rewrite is the next round's parent. Before any rewrite, the record's
own answer is re-derived by its program from the graph (the *anchor*); a record whose anchor fails
is not evolved.

What is written (``--emit``): ``final`` (default) each input's latest surviving version (the input
itself when no round survived); ``evolved`` only records that evolved, the others go to
``dropped.jsonl`` as inputs; ``all`` the inputs plus every surviving round (MMEvol's merged pool).
In every mode each input record is accounted for: in the output or, as ``kind: input``, in
``dropped.jsonl``.

An evolved record keeps ``program``, ``plan`` and ``value`` (the anchor facts, not its new answer
text) and gains ``evolved``: root and parent ids, round, direction, format, prompt versions, model,
steps and the elimination verdict. Its id is ``<root id>:evo<round>``. It is *not* reproducible by
``mmgen verify``'s program re-run, and verify reports it as a mismatch.

The stage runs on the engine (:mod:`mmgen.engine.core`, :class:`EvolveStage`), like ``generate``: the
``i``-th input QA shard becomes ``part-0000i.jsonl``, its drops ``.dropped/part-0000i.jsonl`` (both
written atomically) and then its completion marker ``part-0000i.done.json`` (counts, LLM usage). A
rerun does only the shards without a valid marker (after ``kill -9``, a half-written shard is redone,
finished ones are not asked again); an input shard that changed is redone; other settings need
``--overwrite``. ``--workers`` processes (each with its own client and ``--llm-concurrency`` requests
in flight), ``--rank/--world-size`` and ``--engine ray`` as for every stage; the output is the same
for any of them. After every run ``dropped.jsonl`` joins the complete shards' drops and ``summary.json``
their counts (``llm``: usage of every shard, ``llm_this_run``: of the shards done now). Requests
already answered come from the request cache.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from scene_graphs.io import atomic_write, dumps
from scene_graphs.model import SceneGraph

from ..engine.core import EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec, ShardWorker, run_stage
from ..store import shard_name
from .client import LLMAuthError, LLMClient, LLMIncompleteError, LLMSettings, LLMUnavailableError, Usage
from .guard import GraphFacts, Vocabulary, check_rewrite
from .prompts import (DIRECTIONS, ELIMINATE_SCHEMA, ELIMINATE_VERSION, EVOLVE_SCHEMA, EVOLVE_VERSION,
                      INTERACTION_FORMATS, REASONING_SCHEMA, GraphLimits, eliminate_messages, evolve_messages)
from .stage import DROPS_DIR, GraphLookup, QAStage, add_nested, drop_entry, read_limited
from .vision import ImageSourceError

log = logging.getLogger("mmgen.evolve")

STAGE = "evolve"
EMIT_MODES = ("final", "evolved", "all")
CHUNK = 256
"""Records evolved at a time (their graphs are held in memory meanwhile)."""


@dataclass(frozen=True)
class EvolveOptions:
    rounds: int = 1
    seed: int = 0
    directions: tuple[str, ...] = DIRECTIONS
    emit: str = "final"
    limits: GraphLimits = field(default_factory=GraphLimits)
    images: Any = None
    """An :class:`~mmgen.llm.vision.ImageSource`: rewrite and elimination requests carry the image(s) (a VLM)."""

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError("--rounds must be at least 1")
        bad = [d for d in self.directions if d not in DIRECTIONS]
        if bad or not self.directions:
            raise ValueError(f"unknown evolution direction(s) {bad}; choose from {', '.join(DIRECTIONS)}")
        if self.emit not in EMIT_MODES:
            raise ValueError(f"--emit must be one of {', '.join(EMIT_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "seed": self.seed, "directions": list(self.directions), "emit": self.emit,
                "limits": dict(self.limits.__dict__),
                "prompts": {"evolve": EVOLVE_VERSION, "eliminate": ELIMINATE_VERSION},
                **({"vlm": self.images.identity()} if self.images is not None else {})}


def choose_direction(seed: int, root_id: str, round_no: int,
                     directions: Sequence[str] = DIRECTIONS) -> tuple[str, str | None]:
    """The direction (and interaction format) of one record in one round, from its own generator."""
    from programs.base import stable_int

    rng = np.random.default_rng([seed & 0xFFFFFFFF, stable_int(root_id), round_no])
    direction = directions[int(rng.integers(len(directions)))]
    fmt = INTERACTION_FORMATS[int(rng.integers(len(INTERACTION_FORMATS)))] if direction == "interaction" else None
    return direction, fmt


@dataclass
class Lineage:
    """What became of one input record."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    drops: list[dict[str, Any]] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    server_failed: bool = False
    """A request failed (not the record): the shard is not written and the stage ends non-zero."""


class Evolver:
    """Evolves one record at a time (thread-safe: shared state is read-only, the client is safe)."""

    def __init__(self, client: LLMClient, graphs: Mapping[str, SceneGraph], options: EvolveOptions,
                 vocabulary: Vocabulary, program_config: dict[str, Any] | None, shard: str) -> None:
        from programs.base import load_all

        self.client = client
        self.graphs = graphs
        self.options = options
        self.vocab = vocabulary
        self.registry = load_all()
        self.program_config = program_config
        self.shard = shard
        self.min_score = float((program_config or {}).get("min_score", 0.2))

    # -- helpers ---------------------------------------------------------------------------
    def _see(self, messages: list[dict[str, Any]], graphs: Sequence[SceneGraph]) -> list[dict[str, Any]]:
        """``messages`` with the images attached when the model is a VLM (``--vlm``)."""
        if self.options.images is None:
            return messages
        from .vision import attach_images

        return attach_images(messages, self.options.images.parts(graphs))

    def _drop(self, lineage: Lineage, record: Mapping[str, Any], filter_name: str, reason: str, kind: str,
              round_no: int = 0) -> None:
        lineage.drops.append(drop_entry(STAGE, record, filter_name, reason, self.shard, kind=kind, round=round_no))
        lineage.notes[f"dropped {kind}: {filter_name}"] += 1

    def anchor_problem(self, rec: Mapping[str, Any], graphs: Sequence[SceneGraph]) -> str | None:
        """Whether the record's program still gives its stored value on the graph(s)."""
        from programs.base import GraphView, ProgramConfig

        cls = self.registry.get(rec.get("program"))
        if cls is None:
            return None  # not a program record: only the text rules apply
        config = ProgramConfig(**self.program_config) if self.program_config else ProgramConfig(
            seed=int(rec.get("seed", 0)))
        program = cls()
        try:
            value = program.solve(program.subject([GraphView(g, config) for g in graphs]), rec["plan"])
        except Exception as exc:  # noqa: BLE001 - any failure means the plan does not fit the graph
            return f"the program cannot solve the stored plan on this graph ({type(exc).__name__}: {exc})"
        if json.loads(json.dumps(value)) != rec.get("value"):
            return f"stored answer {rec.get('value')!r}, the graph gives {value!r}"
        return None

    def make_record(self, root: Mapping[str, Any], parent: Mapping[str, Any], reply: Mapping[str, Any],
                    round_no: int, direction: str, fmt: str | None) -> dict[str, Any]:
        steps = [str(s).strip() for s in reply.get("steps") or () if str(s).strip()]
        rec = dict(parent)
        rec.update({
            "id": f"{root['id']}:evo{round_no}",
            "template": f"evolved.{direction}" + (f".{fmt}" if fmt else ""),
            "question_type": "free_form", "question": str(reply["question"]).strip(),
            "answer": str(reply["answer"]).strip(), "options": [], "answer_index": None,
            "rationale": " ".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1)), "turns": [],
            "provenance": {**dict(root.get("provenance") or {}), "evolved_from": parent["id"]},
        })
        rec["evolved"] = {"root_id": root["id"], "parent_id": parent["id"], "round": round_no,
                          "direction": direction, "format": fmt, "prompt_version": EVOLVE_VERSION,
                          "eliminate_prompt_version": ELIMINATE_VERSION, "model": self.client.settings.model,
                          "steps": steps, "root_question": root.get("question"), "root_answer": root.get("answer")}
        return rec

    # -- one lineage -----------------------------------------------------------------------
    def run(self, root: dict[str, Any]) -> Lineage:
        lineage = Lineage()
        emit = self.options.emit
        if not isinstance(root, dict) or not all(isinstance(root.get(k), str) for k in ("id", "question", "answer")) \
                or not isinstance(root.get("images"), list):
            record = root if isinstance(root, dict) else {"value": root}
            self._drop(lineage, record, "invalid", "not a QA record (id, question, answer, images)", "input")
            return lineage
        if root.get("turns") or root.get("answer_type") == "conversation":
            lineage.notes["not evolvable: multi-turn"] += 1
            if emit == "evolved":
                self._drop(lineage, root, "not_evolvable", "multi-turn records are not evolved", "input")
            else:
                lineage.outputs.append(root)
            return lineage
        graphs = [self.graphs.get(i) for i in root.get("images") or ()]
        if not graphs or any(g is None for g in graphs):
            missing = [i for i, g in zip(root.get("images") or (), graphs, strict=True) if g is None]
            self._drop(lineage, root, "no_graph", f"no scene graph for image(s) {missing or root.get('images')}",
                       "input")
            return lineage
        problem = self.anchor_problem(root, graphs)  # type: ignore[arg-type]
        if problem:
            self._drop(lineage, root, "anchor", f"the record does not follow from its graph: {problem}", "input")
            return lineage
        facts = GraphFacts.of(graphs, self.min_score)  # type: ignore[arg-type]
        survivors: list[dict[str, Any]] = []
        parent: dict[str, Any] = root
        last_reason = ""
        for round_no in range(1, self.options.rounds + 1):
            direction, fmt = choose_direction(self.options.seed, root["id"], round_no, self.options.directions)
            lineage.notes[f"round {round_no}: {direction}" + (f" ({fmt})" if fmt else "")] += 1
            schema = REASONING_SCHEMA if direction == "reasoning" else EVOLVE_SCHEMA
            answer = self.client.ask(self._see(evolve_messages(graphs, parent, direction, fmt,  # type: ignore
                                                               self.min_score, self.options.limits), graphs),
                                     schema, "evolved_record")
            if answer.server_failed:
                return Lineage(server_failed=True)
            if not answer.ok:
                last_reason = f"rewrite: {answer.error}"
                stub = {"id": f"{root['id']}:evo{round_no}", "raw_reply": answer.raw,
                        "evolved": {"root_id": root["id"], "parent_id": parent["id"], "round": round_no,
                                    "direction": direction, "format": fmt}}
                self._drop(lineage, stub, answer.kind or "malformed", last_reason, "candidate", round_no)
                break
            cand = self.make_record(root, parent, answer.data, round_no, direction, fmt)  # type: ignore[arg-type]
            problem = check_rewrite(root, parent, cand["question"], cand["answer"], cand["evolved"]["steps"],
                                    facts, self.vocab)
            if problem:
                last_reason = f"guard: {problem}"
                self._drop(lineage, cand, "guard", last_reason, "candidate", round_no)
                break
            verdict = self.client.ask(self._see(eliminate_messages(graphs, parent, cand, self.min_score,  # type: ignore
                                                                   self.options.limits), graphs),
                                      ELIMINATE_SCHEMA, "elimination")
            if verdict.server_failed:
                return Lineage(server_failed=True)
            if not verdict.ok:
                last_reason = f"elimination check failed: {verdict.error}"
                self._drop(lineage, cand, "elimination", last_reason, "candidate", round_no)
                break
            v = verdict.data or {}
            cand["evolved"]["elimination"] = {"improved": v["improved"], "needs_image": v["needs_image"],
                                              "reason": str(v.get("reason", ""))}
            if not v["improved"] or not v["needs_image"]:
                why = " and ".join(w for w, bad in (("not improved", not v["improved"]),
                                                     ("answerable without the image", not v["needs_image"])) if bad)
                last_reason = f"elimination: {why} ({str(v.get('reason', '')).strip()[:200]})"
                self._drop(lineage, cand, "elimination", last_reason, "candidate", round_no)
                break
            lineage.notes[f"evolved in round {round_no}"] += 1
            survivors.append(cand)
            parent = cand
        if emit == "all":
            lineage.outputs.extend([root, *survivors])
        elif survivors:
            lineage.outputs.append(survivors[-1])
        elif emit == "final":
            lineage.outputs.append(root)
        else:
            self._drop(lineage, root, "not_evolved", f"no round survived ({last_reason})", "input")
        return lineage


# --------------------------------------------------------------------------------------- the stage
class EvolveWorker(ShardWorker):
    """Evolves one QA shard: its records in chunks of :data:`CHUNK` on the client's threads. Loads the graph
    index and opens the client (and its request cache) once per process."""

    fatal = (LLMUnavailableError, LLMAuthError, ImageSourceError)

    def __init__(self, sg_src: str, settings: LLMSettings, options: EvolveOptions,
                 program_config: dict[str, Any] | None) -> None:
        self.sg_src = sg_src
        self.settings = settings
        self.options = options
        self.program_config = program_config
        self.client: LLMClient | None = None

    def setup(self) -> None:
        self.lookup = GraphLookup(self.sg_src)
        self.vocab = Vocabulary.build(self.lookup.labels)
        self.client = LLMClient(self.settings)

    def close(self) -> None:
        """Close the client and the graph files (a worker set up in this process)."""
        if self.client is not None:
            self.client.close()
            self.lookup.close()
            self.client = None

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        assert self.client is not None
        client, name = self.client, payload["name"]
        records = list(read_limited(Path(payload["src"]), payload.get("limit")))
        before = client.summary()
        lineages: list[Lineage] = []
        for start in range(0, len(records), CHUNK):
            chunk = records[start:start + CHUNK]
            # graphs are loaded here, on this thread, a chunk at a time (bounded memory)
            needed = sorted({str(i) for r in chunk if isinstance(r, dict) for i in r.get("images") or ()})
            graphs = {i: g for i in needed if (g := self.lookup.get(i)) is not None}
            evolver = Evolver(client, graphs, self.options, self.vocab, self.program_config, name)
            lineages.extend(client.map(evolver.run, chunk))
        failed = sum(ln.server_failed for ln in lineages)
        if failed:  # never a verdict: the shard stays pending for the rerun
            raise LLMIncompleteError(f"{name}: {failed} record(s) pending (requests to the server failed); "
                                     "shard not written")
        notes: Counter = Counter()
        filters: Counter = Counter()
        outputs: list[bytes] = []
        drops: list[bytes] = []
        for lineage in lineages:
            notes.update(lineage.notes)
            outputs.extend(dumps(r) for r in lineage.outputs)
            for d in lineage.drops:
                filters[f"{d['kind']}: {d['filter']}"] += 1
                drops.append(dumps(d))
        evolved = sum(1 for ln in lineages for r in ln.outputs if "evolved" in r)
        with atomic_write(files.path_in(DROPS_DIR)) as f:
            f.writelines(drops)
        with atomic_write(files.path(".jsonl")) as f:
            f.writelines(outputs)
        totals = Counter(inputs=len(records), outputs=len(outputs), evolved=evolved, dropped=len(drops))
        return ShardOutcome(units=len(records), records=len(outputs),
                            counts={"evolve": totals, "notes": notes, "dropped_by_filter": filters},
                            info={"llm": _usage_delta(before, client.summary()), "run": payload["run"]})


class EvolveStage(QAStage):
    """``evolve`` on the engine: one output shard per input QA shard (see the module docstring)."""

    name = STAGE
    unit = "shard"
    stateful = True

    def __init__(self, qa_src: str | Path, sg_src: str | Path, settings: LLMSettings,
                 options: EvolveOptions = EvolveOptions()) -> None:
        super().__init__(qa_src, {**options.to_dict(), "llm": settings.identity()})
        self.sg_src = str(sg_src)
        self.llm = settings
        self.options = options
        self.run_id = uuid.uuid4().hex
        """Marks the markers of shards done by this run (for ``llm_this_run``)."""
        self._worker: EvolveWorker | None = None

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        shards = self.input_specs(options)
        self.prune(out, len(shards))
        return Plan(shards, {**self.input_manifest(), "limit": options.limit})

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        return {"src": str(self.inputs[spec.index]), "name": self.inputs[spec.index].name,
                "limit": self.limits[spec.index], "run": self.run_id}

    def worker(self) -> EvolveWorker:
        self._worker = EvolveWorker(self.sg_src, self.llm, self.options, self.upstream.get("config"))
        return self._worker

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()

    def fold(self, acc: dict[str, Any], marker: Mapping[str, Any]) -> None:
        super().fold(acc, marker)
        info = marker.get("info") or {}
        acc["llm"] = add_nested(acc.get("llm", {}), info.get("llm") or {})
        if info.get("run") == self.run_id:
            acc["llm_this_run"] = add_nested(acc.get("llm_this_run", {}), info.get("llm") or {})

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        super().summary_fields(totals)
        counts, folded = totals["counts"], totals["folded"]
        numbers = counts.get("evolve") or {}
        zero = Usage().to_dict()
        return {**{k: int(numbers.get(k, 0)) for k in ("inputs", "outputs", "evolved", "dropped")},
                "notes": dict(sorted((counts.get("notes") or {}).items())),
                "dropped_by_filter": dict(sorted((counts.get("dropped_by_filter") or {}).items())),
                "llm": add_nested(dict(zero), folded.get("llm", {})),
                "llm_this_run": add_nested(dict(zero), folded.get("llm_this_run", {}))}


def evolve(qa_src: str | Path, sg_src: str | Path, out: str | Path, settings: LLMSettings,
           options: EvolveOptions = EvolveOptions(), overwrite: bool = False,
           engine: EngineOptions | None = None) -> RunSummary:
    """Run the stage (see the module docstring); returns the summary (also in ``summary.json``).
    ``engine`` (workers, ranks, Ray...) wins over ``overwrite`` when given.

    A shard with a record whose requests failed is left without a marker (nothing dropped for it) and the
    call ends with :class:`~mmgen.llm.client.LLMIncompleteError` once the other shards are done; a
    server that is down (:class:`~mmgen.llm.client.LLMUnavailableError`) stops the run at once."""
    engine = engine or EngineOptions(overwrite=overwrite)
    out = Path(out)
    stage = EvolveStage(qa_src, sg_src, settings, options)
    try:
        summary = run_stage(stage, out, engine)
    finally:
        stage.close()
    stage.write_dropped(out)
    if summary["shards_failed"]:
        failed = [shard_name(i) for i in summary["shards_failed"]]
        errors = summary["llm_this_run"].get("errors")
        raise LLMIncompleteError(
            f"{len(failed)} shard(s) ({', '.join(failed)}) are pending because requests to the server at "
            f"{settings.base_url} failed ({errors or 'see the log'}); nothing was dropped for it. Answered requests "
            "are cached: rerun the same command to finish.")
    return summary


def _usage_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """``after - before`` for the numeric counters of a client summary."""
    out: dict[str, Any] = {}
    for k, v in after.items():
        b = before.get(k)
        if isinstance(v, bool) or isinstance(v, str) or v is None:
            out[k] = v
        elif isinstance(v, (int, float)):
            out[k] = round(v - (b or 0), 6)
        elif isinstance(v, Mapping):
            out[k] = _usage_delta(b or {}, v)
        elif isinstance(v, list):
            out[k] = list(v[len(b or []):])
    return out
