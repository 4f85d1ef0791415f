"""The ``curate`` stage: QA shards in, the kept records (same shard names) and ``dropped.jsonl`` out.

Filters, in this order (each record is dropped by the first that rejects it, with its reason):

1. ``invalid``: not a QA record (id, question, answer, images, program), or the ``<image>`` token in its
   text;
2. ``length`` and 3. ``language``: :mod:`mmgen.curate.text`;
4. ``exact_duplicate`` and ``near_duplicate``: :mod:`mmgen.curate.dedup`, per image set;
5. ``quality``: the InstructMining-style score of :mod:`mmgen.curate.quality` below ``min_quality``;
6. ``balance``: answer-balance capping per program, :mod:`mmgen.curate.balance`;
7. ``judge`` (only with a model): :mod:`mmgen.llm.judge` scores, :mod:`mmgen.curate.select` keeps;
   with ``vlm`` the judge also sees the image(s);
8. ``vlm_verify`` (only with a vision model): :mod:`mmgen.llm.vlm_verify` asks the question blind to our
   answer and drops the records where the model clearly disagrees.

A failed request to the model is never a verdict: the stage stops (exit 1) before writing anything and
a rerun finishes from the request cache.

Nothing is lost: every input record is either in a ``part-NNNNN.jsonl`` (input order kept, with a
``curation`` field: quality score, judge verdict) or in ``dropped.jsonl`` (``filter``, ``reason``,
``shard``, the record).

**On the engine** (:class:`CurateStage`), in two phases:

1. *planning* (run-wide, in the driver): the filters above decide over the whole run (duplicates across
   shards, balance per program, judge top fraction) and the decisions are written beside the output:
   ``decisions.jsonl`` (one line per record that is dropped or carries a judge or VLM verdict:
   ``shard``, ``line``, ``id``, ``drop`` ``[filter, reason]``, ``judge``, ``vlm_verify``; grouped by
   shard, in input order) and ``plan.json`` (per input shard: its input key, records, the byte range
   and digest of its decisions; the answer caps, quality and judge totals). Planning is redone on
   every run (judge requests come from the request cache); files whose content did not change are
   not rewritten;
2. *applying* (per shard, on the engine's workers): input shard ``i`` and its decisions become
   ``part-0000i.jsonl`` (kept records), ``.dropped/part-0000i.jsonl`` and the marker. A shard's key is
   its input file and the digest of its decisions, so a rerun with the same plan rewrites nothing,
   and a shard whose decisions changed (another input shard brought a duplicate) is redone alone.
   ``--workers``, ranks and Ray as for every stage; same bytes for any of them.

After every run ``dropped.jsonl`` joins the complete shards' drops and ``summary.json`` their counts with
the plan's totals. Memory while planning: one small entry per record (ids, normalized question, answer
key, score), the records themselves are streamed.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from scene_graphs.io import atomic_write, dumps

from ..engine.core import (EngineOptions, Plan, RunSummary, ShardFiles, ShardOutcome, ShardSpec, ShardWorker,
                           run_stage)
from ..llm.prompts import GraphLimits
from ..llm.stage import DROPS_DIR, QAStage, drop_entry, read_limited
from ..store import read_json, write_json
from .balance import cap_for
from .dedup import Item, find_duplicates
from .quality import quality_score
from .select import select
from .text import answer_key, length_problem, normalize_text, record_language_problem

log = logging.getLogger("mmgen.curate")

STAGE = "curate"
IMAGE_TOKEN = "<image>"
JUDGE_BATCH = 256
PLAN = "plan.json"
DECISIONS = "decisions.jsonl"


@dataclass(frozen=True)
class CurateOptions:
    seed: int = 0
    min_question_words: int = 2
    max_question_words: int = 150
    max_answer_words: int = 400
    min_latin: float = 0.9
    near_dup_threshold: float = 0.85
    """Estimated Jaccard of question 5-grams at or above which two same-answer questions are near
    duplicates (1.0: exact duplicates only)."""
    near_dup_any_answer: bool = False
    max_answer_share: float = 0.3
    """Share of a program's records one answer may hold after capping (1.0: no capping)."""
    min_answer_count: int = 5
    min_quality: float = 0.5
    judge: bool = False
    judge_threshold: float | None = None
    judge_top: float | None = None
    limits: GraphLimits = field(default_factory=GraphLimits)
    vlm: bool = False
    """The judge sees the image(s) (needs ``image_root``)."""
    vlm_verify: bool = False
    """Agreement filter: a VLM answers each question blind to our answer (needs ``image_root``)."""
    image_root: str | None = None
    vlm_max_side: int = 768

    def __post_init__(self) -> None:
        if not 0 < self.near_dup_threshold <= 1:
            raise ValueError("--near-dup-threshold must be in (0, 1]")
        if not 0 < self.max_answer_share <= 1:
            raise ValueError("--max-answer-share must be in (0, 1]")
        if self.judge_threshold is not None and self.judge_top is not None:
            raise ValueError("give --judge-threshold or --judge-top, not both")
        if self.judge_top is not None and not 0 < self.judge_top <= 1:
            raise ValueError("--judge-top must be in (0, 1]")
        if self.judge and self.judge_threshold is None and self.judge_top is None:
            object.__setattr__(self, "judge_threshold", 6.0)
        if self.vlm and not self.judge:
            raise ValueError("--vlm shows the images to the judge: it needs --judge")
        if (self.vlm or self.vlm_verify) and not self.image_root:
            raise ValueError("--vlm and --vlm-verify need --image-root (the folder the images were annotated from)")

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("limits", "image_root")}
        d["limits"] = dict(self.limits.__dict__)
        if self.vlm_verify:
            from ..llm.vlm_verify import VERIFY_VERSION

            d["vlm_verify_prompt"] = VERIFY_VERSION
        if self.judge:
            from ..llm.prompts import JUDGE_VERSION

            d["judge_prompt"] = JUDGE_VERSION
        return d


@dataclass
class Entry:
    """What curation keeps in memory per record."""

    index: int
    shard: int
    id: str
    group: str
    program: str
    question: str
    answer: str
    quality: float
    weak: str
    """The quality indicators below 1 (for the drop reason)."""


def _records(inputs: Sequence[Path], limits: Sequence[int | None] | None = None
             ) -> Iterator[tuple[int, int, int, Any]]:
    """(global index, shard position, line number, record) over every shard (up to its limit), in order."""
    index = 0
    for s, path in enumerate(inputs):
        for lineno, rec in enumerate(read_limited(path, limits[s] if limits else None), 1):
            yield index, s, lineno, rec
            index += 1


def invalid_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"not a JSON object ({type(rec).__name__})"
    for key in ("id", "question", "answer", "program"):
        if not isinstance(rec.get(key), str):
            return f"field {key!r} missing or not a string"
    images = rec.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
        return "field 'images' must be a non-empty list of image ids"
    texts = [rec["question"], rec["answer"], *(x for t in rec.get("turns") or () for x in t)]
    if any(IMAGE_TOKEN in str(t) for t in texts):
        return f"the text contains the image token {IMAGE_TOKEN}"
    return None


@dataclass
class Decisions:
    """What planning decided over the whole run (see the module docstring)."""

    n_input: int
    per_shard: list[int]
    """Records read from each shard."""
    shard_starts: list[int]
    """Global index of each shard's first record."""
    drops: dict[int, tuple[str, str]]
    by_index: dict[int, Entry]
    verdicts: dict[int, dict[str, Any]]
    checks: dict[int, dict[str, Any]]
    caps: dict[str, Any]
    llm_summary: dict[str, Any] | None = None
    verify_summary: dict[str, Any] | None = None

    def locate(self, index: int) -> tuple[int, int]:
        """(shard position, line number) of global record ``index``."""
        s = bisect.bisect_right(self.shard_starts, index) - 1
        return s, index - self.shard_starts[s] + 1


def decide(inputs: Sequence[Path], options: CurateOptions, sg_src: str | Path | None = None, settings: Any = None,
           images: Any = None, limits: Sequence[int | None] | None = None) -> Decisions:
    """The run-wide decisions: every filter over every record of ``inputs`` (see the module docstring)."""
    from programs.base import stable_int

    drops: dict[int, tuple[str, str]] = {}
    entries: list[Entry] = []
    groups: dict[str, list[Entry]] = defaultdict(list)
    per_shard = [0] * len(inputs)
    n_input = 0
    for index, s, _lineno, rec in _records(inputs, limits):
        per_shard[s] += 1
        n_input += 1
        problem = invalid_problem(rec)
        if problem:
            drops[index] = ("invalid", problem)
            continue
        problem = length_problem(rec, options.min_question_words, options.max_question_words,
                                 options.max_answer_words)
        if problem:
            drops[index] = ("length", problem)
            continue
        problem = record_language_problem(rec, options.min_latin)
        if problem:
            drops[index] = ("language", problem)
            continue
        score, ind = quality_score(rec)
        entry = Entry(index, s, rec["id"], "\x1f".join(rec["images"]), rec["program"],
                      normalize_text(rec["question"]), answer_key(rec), score,
                      ", ".join(f"{k}={v:g}" for k, v in ind.items() if v < 1))
        entries.append(entry)
        groups[entry.group].append(entry)
    starts = [sum(per_shard[:i]) for i in range(len(inputs))]

    by_index = {e.index: e for e in entries}
    for group in groups.values():
        found = find_duplicates([Item(e.index, e.question, e.answer) for e in group], options.near_dup_threshold,
                                options.near_dup_any_answer)
        for i, (kind, other, sim) in found.items():
            drops[i] = (f"{kind}_duplicate", f"{kind} duplicate of {by_index[other].id}"
                        + (f" (question similarity {sim:.2f})" if kind == "near" else ""))
    for e in entries:
        if e.index not in drops and e.quality < options.min_quality:
            drops[e.index] = ("quality", f"quality {e.quality:.2f} below {options.min_quality:g} ({e.weak})")

    tiebreak = {e.index: (e.quality, stable_int(f"{options.seed}|{e.id}")) for e in entries}
    caps = _balance(entries, drops, options, tiebreak)

    verdicts: dict[int, dict[str, Any]] = {}
    llm_summary = None
    if options.judge:
        verdicts, llm_summary = _judge(inputs, drops, options, sg_src, settings, images, limits)  # type: ignore
        failed = [i for i, v in verdicts.items() if v.pop("server_failed", False)]
        if failed:
            from ..llm.client import LLMIncompleteError

            raise LLMIncompleteError(
                f"{len(failed)} of {len(verdicts)} record(s) could not be judged because requests to the server at "
                f"{settings.base_url} failed ({llm_summary.get('errors') or 'see the log'}); nothing was written or "
                "dropped for it. Answered requests are cached: rerun the same command to finish.")
        scores = {i: v["score"] for i, v in verdicts.items()}
        for i, reason in select(scores, options.judge_threshold, options.judge_top, tiebreak).items():
            v = verdicts[i]
            detail = f": {v['error']}" if v.get("error") else (f" ({v['reason'][:200]})" if v.get("reason") else "")
            drops[i] = ("judge", reason + detail)

    checks: dict[int, dict[str, Any]] = {}
    verify_summary = None
    if options.vlm_verify:
        checks, verify_summary = _vlm_verify(inputs, drops, sg_src, settings, images, limits)  # type: ignore
        failed = [i for i, c in checks.items() if c.pop("server_failed", False)]
        if failed:
            from ..llm.client import LLMIncompleteError

            raise LLMIncompleteError(
                f"{len(failed)} of {len(checks)} record(s) could not be checked by the VLM because requests to "
                f"{settings.base_url} failed ({verify_summary.get('errors') or 'see the log'}); nothing was written "
                "or dropped for it. Answered requests are cached: rerun the same command to finish.")
        for i, c in checks.items():
            if c["agree"] is False:
                drops[i] = ("vlm_verify", f"the VLM answered {c['vlm_answer'][:100]!r} ({c['note']}); "
                                          f"the record says {by_index[i].answer[:100]!r}")
    return Decisions(n_input, per_shard, starts, drops, by_index, verdicts, checks, caps, llm_summary, verify_summary)


def plan_totals(d: Decisions) -> dict[str, Any]:
    """Run-wide summary entries of the decisions (kept in ``plan.json``, shown in ``summary.json``)."""
    totals: dict[str, Any] = {"inputs": d.n_input, "answer_caps": d.caps}
    qualities = [e.quality for e in d.by_index.values()]
    if qualities:
        totals["quality"] = {"mean": round(sum(qualities) / len(qualities), 4), "min": min(qualities),
                             "max": max(qualities)}
    if d.verdicts:
        scores = Counter(v["score"] for v in d.verdicts.values() if v.get("score") is not None)
        n = sum(scores.values())
        totals["judge"] = {"judged": len(d.verdicts), "scored": n,
                           "mean_score": round(sum(k * v for k, v in scores.items()) / n, 3) if n else None,
                           "scores": {str(k): v for k, v in sorted(scores.items())}}
    if d.checks or d.verify_summary is not None:
        outcomes = Counter("agree" if c.get("agree") else "disagree" if c.get("agree") is False
                           else c.get("note", "unclear") for c in d.checks.values() if c)
        totals["vlm_verify"] = {"checked": sum(1 for c in d.checks.values() if c),
                                "outcomes": dict(sorted(outcomes.items()))}
    return totals


def decision_lines(d: Decisions, names: Sequence[str]) -> list[list[bytes]]:
    """Per shard, the ``decisions.jsonl`` lines of its records that are dropped or carry a verdict."""
    lines: list[list[bytes]] = [[] for _ in names]
    for index in sorted(set(d.drops) | set(d.verdicts) | {i for i, c in d.checks.items() if c}):
        s, lineno = d.locate(index)
        entry = d.by_index.get(index)
        line: dict[str, Any] = {"shard": names[s], "line": lineno, "id": entry.id if entry else None}
        if index in d.drops:
            line["drop"] = list(d.drops[index])
        if index in d.verdicts:
            line["judge"] = d.verdicts[index]
        if d.checks.get(index):
            line["vlm_verify"] = d.checks[index]
        lines[s].append(dumps(line))
    return lines


# --------------------------------------------------------------------------------------- applying, on the engine
class CurateWorker(ShardWorker):
    """Applies the plan's decisions to one input shard: kept records (with ``curation``) and drops."""

    def run(self, payload: Any, files: ShardFiles) -> ShardOutcome:
        from .quality import quality_score

        decisions: dict[int, dict[str, Any]] = {}
        if payload["size"]:
            with open(payload["decisions"], "rb") as f:
                f.seek(payload["offset"])
                for raw in f.read(payload["size"]).splitlines():
                    line = json.loads(raw)
                    decisions[int(line["line"])] = line
        name = payload["name"]
        per_filter: Counter = Counter()
        program_in: Counter = Counter()
        program_kept: Counter = Counter()
        kept: list[bytes] = []
        dropped: list[bytes] = []
        n = 0
        for lineno, rec in enumerate(read_limited(Path(payload["src"]), payload.get("limit")), 1):
            n += 1
            program = str(rec.get("program", "?") if isinstance(rec, dict) else "?")
            program_in[program] += 1
            decision = decisions.get(lineno, {})
            verdict, check = decision.get("judge"), decision.get("vlm_verify")
            if "drop" in decision:
                filter_name, reason = decision["drop"]
                per_filter[filter_name] += 1
                record = rec if isinstance(rec, dict) else {"value": rec}
                extra: dict[str, Any] = {"line": lineno}
                if verdict is not None:
                    extra["judge"] = verdict
                if check:
                    extra["vlm_verify"] = check
                dropped.append(dumps(drop_entry(STAGE, record, filter_name, reason, name, **extra)))
            else:
                out_rec = dict(rec)
                curation: dict[str, Any] = {"quality": quality_score(rec)[0]}
                if verdict is not None:
                    curation["judge"] = verdict
                if check:
                    curation["vlm_verify"] = check
                out_rec["curation"] = curation
                kept.append(dumps(out_rec))
                program_kept[program] += 1
        if len(decisions) and max(decisions) > n:
            raise ValueError(f"{name}: the plan has decisions past its {n} record(s); rerun to plan again")
        with atomic_write(files.path_in(DROPS_DIR)) as f:
            f.writelines(dropped)
        with atomic_write(files.path(".jsonl")) as f:
            f.writelines(kept)
        return ShardOutcome(units=n, records=len(kept),
                            counts={"curate": Counter(kept=len(kept), dropped=len(dropped)),
                                    "dropped_by_filter": per_filter, "program_input": program_in,
                                    "program_kept": program_kept})


class CurateStage(QAStage):
    """``curate`` on the engine: a planning phase, then one output shard per input shard (module docstring)."""

    name = STAGE

    def __init__(self, qa_src: str | Path, options: CurateOptions = CurateOptions(), sg_src: str | Path | None = None,
                 settings: Any = None) -> None:
        if (options.judge or options.vlm_verify) and (settings is None or sg_src is None):
            raise ValueError("--judge and --vlm-verify need a model (--llm-base-url, --llm-model) and --scene-graphs")
        stage_settings = options.to_dict()
        if options.judge or options.vlm_verify:
            stage_settings["llm"] = settings.identity()
        super().__init__(qa_src, stage_settings)
        self.images = None
        if options.vlm or options.vlm_verify:
            from ..llm.vision import ImageSource

            self.images = ImageSource(Path(str(options.image_root)), options.vlm_max_side)
        self.options = options
        self.sg_src = sg_src
        self.llm = settings
        self.totals: dict[str, Any] = {}
        self.usage: dict[str, Any] = {}
        self._ranges: list[tuple[int, int]] = []
        self._decisions = ""

    def plan(self, out: Path, options: EngineOptions) -> Plan:
        self.input_specs(options)  # the inputs and their limits
        d = decide(self.inputs, self.options, self.sg_src, self.llm, self.images, self.limits)
        names = [p.name for p in self.inputs]
        lines = decision_lines(d, names)
        digests = [hashlib.sha256(b"".join(shard)).hexdigest()[:32] for shard in lines]
        shards = self.input_specs(options, digests)
        offset, self._ranges = 0, []
        for shard in lines:
            size = sum(map(len, shard))
            self._ranges.append((offset, size))
            offset += size
        self.totals = plan_totals(d)
        self.usage = {k: v for k, v in (("llm", d.llm_summary), ("vlm_verify", d.verify_summary)) if v is not None}
        plan = {"stage": STAGE, "config_id": self.config_id(), "decisions": DECISIONS, "decisions_bytes": offset,
                "decisions_sha256": hashlib.sha256(b"".join(b"".join(s) for s in lines)).hexdigest(),
                "shards": [{"name": n, "key": spec.key, "records": d.per_shard[i],
                            "decisions": len(lines[i]), "offset": rng[0], "bytes": rng[1], "digest": digests[i]}
                           for i, (n, spec, rng) in enumerate(zip(names, shards, self._ranges))],
                "totals": self.totals}
        old = read_json(out / PLAN)
        path = out / DECISIONS
        if not (isinstance(old, dict) and old.get("decisions_sha256") == plan["decisions_sha256"]
                and path.is_file() and path.stat().st_size == offset):
            with atomic_write(path) as f:
                for shard in lines:
                    f.writelines(shard)
        if old != plan:
            write_json(out / PLAN, plan)
        self._decisions = str(path)
        self.prune(out, len(shards))
        manifest = {**self.input_manifest(), "limit": options.limit, "plan": PLAN}
        return Plan(shards, manifest, counts={"records": d.n_input, "dropped": len(d.drops)})

    def payload(self, spec: ShardSpec) -> dict[str, Any]:
        offset, size = self._ranges[spec.index]
        return {"src": str(self.inputs[spec.index]), "name": self.inputs[spec.index].name,
                "limit": self.limits[spec.index], "decisions": self._decisions, "offset": offset, "size": size}

    def worker(self) -> CurateWorker:
        return CurateWorker()

    def summary_fields(self, totals: dict[str, Any]) -> dict[str, Any]:
        super().summary_fields(totals)
        counts = totals["counts"]
        numbers = counts.get("curate") or {}
        program_in, program_kept = counts.get("program_input") or {}, counts.get("program_kept") or {}
        fields: dict[str, Any] = {
            "kept": int(numbers.get("kept", 0)), "dropped": int(numbers.get("dropped", 0)),
            "dropped_by_filter": dict(sorted((counts.get("dropped_by_filter") or {}).items())),
            "per_program": {p: {"input": program_in[p], "kept": program_kept.get(p, 0)} for p in sorted(program_in)},
            **self.totals}
        if "llm" in self.usage:
            fields["llm"] = self.usage["llm"]
        if "vlm_verify" in self.usage:
            fields["vlm_verify"] = {**fields.get("vlm_verify", {}), "llm": self.usage["vlm_verify"]}
        return fields


def curate(qa_src: str | Path, out: str | Path, options: CurateOptions = CurateOptions(),
           sg_src: str | Path | None = None, settings: Any = None, overwrite: bool = False,
           engine: EngineOptions | None = None) -> RunSummary:
    """Run the stage (see the module docstring); returns the summary (also in ``summary.json``).
    ``settings`` (:class:`~mmgen.llm.client.LLMSettings`) and ``sg_src`` are needed with ``options.judge``;
    ``engine`` (workers, ranks, Ray...) wins over ``overwrite`` when given."""
    engine = engine or EngineOptions(overwrite=overwrite)
    out = Path(out)
    stage = CurateStage(qa_src, options, sg_src, settings)
    summary = run_stage(stage, out, engine)
    stage.write_dropped(out)
    if summary["complete"] and summary["kept"] + summary["dropped"] != summary["inputs"]:
        raise AssertionError("curation lost records: kept + dropped != input")  # guarded by tests
    return summary


def _balance(entries: Sequence[Entry], drops: dict[int, tuple[str, str]], options: CurateOptions,
             tiebreak: Mapping[int, tuple[float, int]]) -> dict[str, Any]:
    """Apply the capping rule to the records still kept; returns the caps applied per program."""
    if options.max_answer_share >= 1:
        return {}
    per_program: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        if e.index not in drops:
            per_program[e.program][e.answer].append(e)
    applied: dict[str, Any] = {}
    for program in sorted(per_program):
        answers = per_program[program]
        counts = {a: len(v) for a, v in answers.items()}
        cap = cap_for(counts, options.max_answer_share, options.min_answer_count)
        if cap is None:
            continue
        capped = {}
        for a, group in sorted(answers.items()):
            if len(group) <= cap:
                continue
            ranked = sorted(group, key=lambda e: (-tiebreak[e.index][0], tiebreak[e.index][1], e.index))
            for e in ranked[cap:]:
                drops[e.index] = ("balance", f"answer {a} of {program} capped at {cap} of {len(group)} records")
            capped[a] = len(group)
        applied[program] = {"cap": cap, "answers_over_cap": capped}
    return applied


def _ask_kept(inputs: Sequence[Path], drops: Mapping[int, tuple[str, str]], sg_src: str | Path, settings: Any,
              make: Callable[[Any, Callable[[str], Any]], Callable[[dict[str, Any]], Any]],
              limits: Sequence[int | None] | None = None) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """``make(client, get_graph)`` over every record still kept, in batches, on the client's threads: each
    outcome as a dict (with ``server_failed``); and the client's summary."""
    from ..llm.client import LLMClient
    from ..llm.stage import GraphLookup

    lookup = GraphLookup(sg_src)
    outcomes: dict[int, dict[str, Any]] = {}
    try:
        with LLMClient(settings) as client:
            batch: list[tuple[int, dict[str, Any]]] = []

            def flush() -> None:
                # graphs are loaded here, on this thread (the lookup is not thread-safe)
                graphs = {i: lookup.get(i) for _, rec in batch for i in rec["images"]}
                fn = make(client, graphs.get)
                for (index, _), out in zip(batch, client.map(fn, [rec for _, rec in batch]), strict=True):
                    outcomes[index] = {**out.to_dict(settings.model), "server_failed": out.server_failed}
                batch.clear()

            for index, _s, _l, rec in _records(inputs, limits):
                if index in drops:
                    continue
                batch.append((index, rec))
                if len(batch) >= JUDGE_BATCH:
                    flush()
            if batch:
                flush()
            return outcomes, client.summary()
    finally:
        lookup.close()


def _judge(inputs: Sequence[Path], drops: Mapping[int, tuple[str, str]], options: CurateOptions,
           sg_src: str | Path, settings: Any, images: Any = None, limits: Sequence[int | None] | None = None
           ) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Judge verdicts (as dicts) of every record still kept; and the client's summary."""
    from ..llm.judge import Judge
    from ..llm.stage import upstream_manifest

    min_score = float((upstream_manifest(Path(inputs[0]).parent).get("config") or {}).get("min_score", 0.2))
    return _ask_kept(inputs, drops, sg_src, settings,
                     lambda client, get: Judge(client, get, min_score, options.limits, images=images), limits)


def _vlm_verify(inputs: Sequence[Path], drops: Mapping[int, tuple[str, str]], sg_src: str | Path, settings: Any,
                images: Any, limits: Sequence[int | None] | None = None) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The VLM's blind answer, compared, for every record still kept; and the client's summary."""
    from ..llm.vlm_verify import Verifier

    return _ask_kept(inputs, drops, sg_src, settings, lambda client, get: Verifier(client, images, get), limits)
