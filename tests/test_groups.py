"""Image-set grouping: random, shared-category and file strategies; set sizes, reuse, determinism,
independence from input order, the index built from graph shards, and clear errors."""

from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgen.stages.generate_multi import build_index, confident_labels
from mmgen.groups import (
    GroupOptions,
    ImageIndex,
    file_sets,
    make_sets,
    parse_set_size,
    random_sets,
    shared_category_sets,
)
from programs.base import GraphView, ProgramConfig
from scene_graphs.io import write_graphs
from scene_graphs.synthetic import random_graph
from tests import strategies as sgst


def _index(n: int = 300, seed: int = 0, n_labels: int = 12, empty_share: float = 0.1) -> ImageIndex:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = 0 if rng.random() < empty_share else int(rng.integers(1, 4))
        labels = [f"label{int(j)}" for j in rng.choice(n_labels, size=k, replace=False)]
        rows.append((f"img-{stable_hex(i)}", i % 3, 100 * i, labels))
    return ImageIndex.build(rows)


def stable_hex(i: int) -> str:
    return f"{(i * 2654435761) % 2**32:08x}"


# --------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("text, expected", [("2", (2, 2)), ("6", (6, 6)), ("2-4", (2, 4)), (" 3 - 5 ", (3, 5)),
                                            ("4-4", (4, 4))])
def test_parse_set_size(text, expected):
    assert parse_set_size(text) == expected


@pytest.mark.parametrize("text", ["1", "7", "2-7", "4-2", "0-3", "a", "2-3-4", "", "-3"])
def test_parse_set_size_refuses(text):
    with pytest.raises(ValueError, match="set size"):
        parse_set_size(text)


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "nearest"}, "unknown grouping strategy"),
    ({"min_size": 1}, "set sizes"),
    ({"min_size": 4, "max_size": 3}, "set sizes"),
    ({"max_size": 7}, "set sizes"),
    ({"sets": 0}, "positive"),
    ({"strategy": "file"}, "groups file"),
    ({"groups_file": "x.jsonl"}, "groups file"),
])
def test_group_options_refuse(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GroupOptions(**kwargs)


# --------------------------------------------------------------------------------------- random
@pytest.mark.parametrize("lo, hi", [(2, 2), (2, 4), (3, 6), (6, 6)])
def test_random_one_pass_partitions_the_images(lo, hi):
    opts = GroupOptions(strategy="random", min_size=lo, max_size=hi)
    sets = random_sets(200, opts, seed=4)
    members = [i for s in sets for i in s]
    assert len(members) == len(set(members)), "an image used twice in one pass"
    assert all(lo <= len(s) <= hi for s in sets)
    assert len(members) > 200 - hi - lo  # only a short tail is left out
    if lo < hi:
        assert len({len(s) for s in sets}) > 1


def test_random_is_seeded_and_varied():
    opts = GroupOptions(strategy="random")
    assert random_sets(100, opts, 1) == random_sets(100, opts, 1)
    assert random_sets(100, opts, 1) != random_sets(100, opts, 2)
    position = Counter(s.index(0) for seed in range(200) for s in random_sets(10, opts, seed) if 0 in s)
    assert len(position) >= 2  # image 0 is not always "Image 1"


def test_sets_do_not_depend_on_input_order_or_shard_layout():
    rng = np.random.default_rng(3)
    rows = [(f"id{i:04d}", i % 4, i, [f"l{i % 5}"]) for i in range(80)]
    shuffled = [rows[int(j)] for j in rng.permutation(len(rows))]
    relaid = [(r[0], 0, 7 * i, r[3]) for i, r in enumerate(shuffled)]
    for strategy in ("random", "shared-category"):
        opts = GroupOptions(strategy=strategy)
        a = make_sets(ImageIndex.build(rows), opts, 9)
        assert a == make_sets(ImageIndex.build(shuffled), opts, 9) == make_sets(ImageIndex.build(relaid), opts, 9)
        assert a


def test_more_sets_than_one_pass_gives():
    opts = GroupOptions(strategy="random", min_size=2, max_size=3, sets=150)
    sets = random_sets(60, opts, 0)
    assert len(sets) == 150
    assert len({frozenset(s) for s in sets}) == 150, "a set was used twice"
    assert max(Counter(i for s in sets for i in s).values()) > 1  # images come back in other sets


def test_reuse_allows_the_same_images_in_another_order(caplog):
    few = GroupOptions(strategy="random", min_size=2, max_size=2, sets=25)
    with caplog.at_level(logging.WARNING, logger="mmgen.groups"):
        once = random_sets(6, few, 0)
    assert len({frozenset(s) for s in once}) == len(once) <= 15  # 15 pairs of 6 images
    assert "only" in caplog.text  # asked for 25, fewer exist: said so, and stopped
    again = random_sets(6, GroupOptions(strategy="random", min_size=2, max_size=2, sets=25, reuse=True), 0)
    assert len(set(again)) == len(again) == 25  # ordered sets never repeat
    assert len({frozenset(s) for s in again}) < 25  # but the same images come back reordered


def test_too_few_images():
    assert random_sets(1, GroupOptions(strategy="random"), 0) == []
    assert random_sets(2, GroupOptions(strategy="random", min_size=3, max_size=3), 0) == []


# --------------------------------------------------------------------------------------- shared category
@pytest.mark.parametrize("lo, hi", [(2, 2), (2, 4), (4, 6)])
def test_shared_category_sets_share_a_category(lo, hi):
    index = _index()
    sets = shared_category_sets(index, GroupOptions(min_size=lo, max_size=hi), seed=1)
    assert len(sets) > 40
    members = [i for s in sets for i in s]
    assert len(members) == len(set(members))
    for s in sets:
        assert lo <= len(s) <= hi
        shared = set.intersection(*(set(index.labels_of(i)) for i in s))
        assert shared, [index.labels_of(i) for i in s]


def test_shared_category_skips_images_without_categories_and_is_seeded():
    index = _index(empty_share=0.5)
    sets = shared_category_sets(index, GroupOptions(), seed=2)
    assert all(index.labels_of(i) for s in sets for i in s)
    assert sets == shared_category_sets(index, GroupOptions(), seed=2)
    assert sets != shared_category_sets(index, GroupOptions(), seed=3)


def test_shared_category_more_passes_and_reuse():
    index = _index(n=40, n_labels=3, empty_share=0.0)
    sets = shared_category_sets(index, GroupOptions(sets=60), seed=0)
    assert len(sets) == 60 and len({frozenset(s) for s in sets}) == 60
    for s in sets:
        assert set.intersection(*(set(index.labels_of(i)) for i in s))


def test_shared_category_scales():
    """A pass is linear in the label occurrences: 60k images in well under a few seconds."""
    import time

    index = _index(n=60_000, n_labels=200, seed=5)
    t = time.perf_counter()
    sets = shared_category_sets(index, GroupOptions(), seed=0)
    assert time.perf_counter() - t < 10
    assert len(sets) > 15_000


# --------------------------------------------------------------------------------------- file
def test_file_sets(tmp_path, caplog):
    ids = ["a", "b", "c", "d"]
    path = tmp_path / "groups.jsonl"
    path.write_text('["a", "b"]\n\n["c", "a", "d"]\n["b", "a"]\n["a", "b"]\n')
    positions = {x: i for i, x in enumerate(ids)}
    with caplog.at_level(logging.WARNING, logger="mmgen.groups"):
        sets = file_sets(path, positions, GroupOptions(strategy="file", groups_file=str(path)))
    assert sets == [(0, 1), (2, 0, 3)]
    assert "2 repeated set(s)" in caplog.text
    reused = file_sets(path, positions, GroupOptions(strategy="file", groups_file=str(path), reuse=True))
    assert reused == [(0, 1), (2, 0, 3), (1, 0)]
    first = file_sets(path, positions, GroupOptions(strategy="file", groups_file=str(path), sets=1))
    assert first == [(0, 1)]
    index = ImageIndex.build([(x, 0, 0, []) for x in reversed(ids)])
    assert make_sets(index, GroupOptions(strategy="file", groups_file=str(path)), 0) == [("a", "b"), ("c", "a", "d")]


@pytest.mark.parametrize("line, message", [
    ("[\"a\", ", "malformed JSON"),
    ("{\"a\": 1}", "JSON list of image ids"),
    ("[\"a\", 3]", "JSON list of image ids"),
    ("[\"a\"]", "2-6 images"),
    (json.dumps(list("abcdefg")), "2-6 images"),
    ("[\"a\", \"a\"]", "twice"),
    ("[\"a\", \"zz\"]", "no scene graph with image id 'zz'"),
])
def test_file_sets_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "g.jsonl"
    path.write_text('["a", "b"]\n' + line + "\n")
    positions = {x: i for i, x in enumerate("abcdefg")}
    with pytest.raises(ValueError, match=message) as err:
        file_sets(path, positions, GroupOptions(strategy="file", groups_file=str(path)))
    assert f"{path}:2" in str(err.value)


# --------------------------------------------------------------------------------------- index
@settings(max_examples=60, deadline=None)
@given(sgst.scene_graphs(max_objects=6), st.floats(0, 1), st.floats(0, 1))
def test_index_labels_match_countable_labels(graph, a, b):
    lo, hi = min(a, b), max(a, b)
    config = ProgramConfig(min_score=lo, confident_score=hi)
    assert confident_labels(graph.to_dict(), lo, hi) == sorted(GraphView(graph, config).countable_labels)


def test_build_index_from_shards(tmp_path):
    rng = np.random.default_rng(0)
    graphs = [random_graph(rng, f"g{i:02d}") for i in range(12)]
    write_graphs(tmp_path / "part-00001.jsonl", graphs[:5])
    write_graphs(tmp_path / "part-00000.jsonl", graphs[5:])
    inputs = [tmp_path / "part-00000.jsonl", tmp_path / "part-00001.jsonl"]
    index = build_index(inputs)
    assert index.ids == sorted(g.image_id for g in graphs)
    for i, image_id in enumerate(index.ids):
        path = inputs[int(index.shard[i])]
        with path.open("rb") as f:
            f.seek(int(index.offset[i]))
            assert json.loads(f.readline())["image_id"] == image_id
    assert build_index(inputs, workers=2).ids == index.ids
    write_graphs(tmp_path / "part-00002.jsonl", graphs[:1])
    with pytest.raises(ValueError, match="appears twice"):
        build_index(inputs + [tmp_path / "part-00002.jsonl"])
