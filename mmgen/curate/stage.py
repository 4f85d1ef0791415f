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
``shard``, the record). Curation is decided over the whole run (balancing is global), so a rerun
redoes it; judge requests come from the request cache. Memory: one small entry per record (ids,
normalized question, answer key, score), the records themselves are streamed.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from scene_graphs.io import atomic_write, dumps, read_jsonl

from ..llm.prompts import GraphLimits
from ..llm.stage import drop_entry, prepare_output, stage_manifest
from ..store import DROPPED, SUMMARY, qa_shards, write_json
from .balance import cap_for
from .dedup import Item, find_duplicates
from .quality import quality_score
from .select import select
from .text import answer_key, length_problem, normalize_text, record_language_problem

log = logging.getLogger("mmgen.curate")

STAGE = "curate"
IMAGE_TOKEN = "<image>"
JUDGE_BATCH = 256


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


def _records(inputs: Sequence[Path]) -> Iterator[tuple[int, int, int, Any]]:
    """(global index, shard position, line number, record) over every shard, in order."""
    index = 0
    for s, path in enumerate(inputs):
        for lineno, rec in enumerate(read_jsonl(path), 1):
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


def curate(qa_src: str | Path, out: str | Path, options: CurateOptions = CurateOptions(),
           sg_src: str | Path | None = None, settings: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Run the stage (see the module docstring); returns the summary (also in ``summary.json``).
    ``settings`` (:class:`~mmgen.llm.client.LLMSettings`) and ``sg_src`` are needed with ``options.judge``."""
    from programs.base import stable_int

    qa_src, out = Path(qa_src), Path(out)
    inputs = qa_shards(qa_src)
    if (options.judge or options.vlm_verify) and (settings is None or sg_src is None):
        raise ValueError("--judge and --vlm-verify need a model (--llm-base-url, --llm-model) and --scene-graphs")
    images = None
    if options.vlm or options.vlm_verify:
        from ..llm.vision import ImageSource

        images = ImageSource(Path(str(options.image_root)), options.vlm_max_side)
    stage_settings = options.to_dict()
    if options.judge or options.vlm_verify:
        stage_settings["llm"] = settings.identity()
    manifest = stage_manifest(STAGE, qa_src, inputs, stage_settings)
    prepare_output(out, manifest, ("qa_inputs", STAGE, "config"), overwrite)

    drops: dict[int, tuple[str, str]] = {}
    entries: list[Entry] = []
    groups: dict[str, list[Entry]] = defaultdict(list)
    n_input = 0
    for index, s, _lineno, rec in _records(inputs):
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
        verdicts, llm_summary = _judge(inputs, drops, options, sg_src, settings, images)  # type: ignore[arg-type]
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
        checks, verify_summary = _vlm_verify(inputs, drops, sg_src, settings, images)  # type: ignore[arg-type]
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

    summary = _write(out, inputs, drops, by_index, verdicts, settings, checks)
    summary.update(inputs=n_input, answer_caps=caps)
    if llm_summary is not None:
        summary["llm"] = llm_summary
    if verify_summary is not None:
        outcomes = Counter("agree" if c.get("agree") else "disagree" if c.get("agree") is False
                           else c.get("note", "unclear") for c in checks.values() if c)
        summary["vlm_verify"] = {"checked": sum(1 for c in checks.values() if c), "outcomes": dict(sorted(outcomes.items())),
                                 "llm": verify_summary}
    if summary["kept"] + summary["dropped"] != n_input:
        raise AssertionError("curation lost records: kept + dropped != input")  # guarded by tests
    write_json(out / SUMMARY, summary)
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
              make: Callable[[Any, Callable[[str], Any]], Callable[[dict[str, Any]], Any]]
              ) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
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

            for index, _s, _l, rec in _records(inputs):
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
           sg_src: str | Path, settings: Any, images: Any = None) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """Judge verdicts (as dicts) of every record still kept; and the client's summary."""
    from ..llm.judge import Judge
    from ..llm.stage import upstream_manifest

    min_score = float((upstream_manifest(Path(inputs[0]).parent).get("config") or {}).get("min_score", 0.2))
    return _ask_kept(inputs, drops, sg_src, settings,
                     lambda client, get: Judge(client, get, min_score, options.limits, images=images))


def _vlm_verify(inputs: Sequence[Path], drops: Mapping[int, tuple[str, str]], sg_src: str | Path, settings: Any,
                images: Any) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    """The VLM's blind answer, compared, for every record still kept; and the client's summary."""
    from ..llm.vlm_verify import Verifier

    return _ask_kept(inputs, drops, sg_src, settings, lambda client, get: Verifier(client, images, get))


def _write(out: Path, inputs: Sequence[Path], drops: Mapping[int, tuple[str, str]], by_index: Mapping[int, Entry],
           verdicts: Mapping[int, dict[str, Any]], settings: Any,
           checks: Mapping[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    kept = 0
    per_filter: Counter = Counter()
    per_program: dict[str, Counter] = defaultdict(Counter)
    judge_scores: Counter = Counter()
    records = _records(inputs)
    pending = next(records, None)
    with atomic_write(out / DROPPED) as dropped_file:
        for s, path in enumerate(inputs):
            lines: list[bytes] = []
            while pending is not None and pending[1] == s:
                index, _s, lineno, rec = pending
                program = rec.get("program", "?") if isinstance(rec, dict) else "?"
                per_program[str(program)]["input"] += 1
                verdict = verdicts.get(index)
                if verdict is not None and verdict.get("score") is not None:
                    judge_scores[verdict["score"]] += 1
                if index in drops:
                    filter_name, reason = drops[index]
                    per_filter[filter_name] += 1
                    record = rec if isinstance(rec, dict) else {"value": rec}
                    extra = {"line": lineno}
                    if verdict is not None:
                        extra["judge"] = verdict
                    if checks and checks.get(index):
                        extra["vlm_verify"] = checks[index]
                    dropped_file.write(dumps(drop_entry(STAGE, record, filter_name, reason, path.name, **extra)))
                else:
                    out_rec = dict(rec)
                    curation: dict[str, Any] = {"quality": by_index[index].quality}
                    if verdict is not None:
                        curation["judge"] = verdict
                    if checks and checks.get(index):
                        curation["vlm_verify"] = checks[index]
                    out_rec["curation"] = curation
                    lines.append(dumps(out_rec))
                    per_program[str(program)]["kept"] += 1
                    kept += 1
                pending = next(records, None)
            with atomic_write(out / path.name) as f:
                f.writelines(lines)
    summary: dict[str, Any] = {"stage": STAGE, "shards": len(inputs), "kept": kept, "dropped": sum(per_filter.values()),
                               "dropped_by_filter": dict(sorted(per_filter.items())),
                               "per_program": {p: {"input": c["input"], "kept": c["kept"]}
                                               for p, c in sorted(per_program.items())}}
    qualities = [e.quality for e in by_index.values()]
    if qualities:
        summary["quality"] = {"mean": round(sum(qualities) / len(qualities), 4), "min": min(qualities),
                              "max": max(qualities)}
    if verdicts:
        n = sum(judge_scores.values())
        summary["judge"] = {"judged": len(verdicts), "scored": n,
                            "mean_score": round(sum(k * v for k, v in judge_scores.items()) / n, 3) if n else None,
                            "scores": {str(k): v for k, v in sorted(judge_scores.items())}}
    return summary

