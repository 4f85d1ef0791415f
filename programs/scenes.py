"""Which object categories go together, as plain data (for hard negatives such as "Is there a fork?").

A hard negative asks about a category that is *absent* but *plausible*: it belongs to a scene that
the present labels suggest (a kitchen photo is asked about a toaster, never about a giraffe). Three
tables feed that choice, all lower-case labels in the spellings COCO and Visual Genome use:

* :data:`SCENES`: scene name -> discrete, countable categories that appear together there. Stuff
  and near-ubiquitous parts (sky, wall, floor, road, window, shirt, hand, wheel, tree, light...) are
  left out on purpose: they are in nearly every photo of the scene whether annotated or not, so
  "no" would often be wrong.
* :data:`SYNONYMS`: groups of labels that can name the same thing (synonyms, hypernyms and common
  sub-kinds). A category is never asked about as absent when any label of one of its groups is
  present: "Is there a person?" must not be answered "no" because the graph says "man".
* :data:`COCO_CATEGORIES`: the 80 COCO thing categories. A graph whose labels all come from this
  list was probably made by a COCO-vocabulary detector, which could never have found a "lamp", so
  its negatives are drawn from COCO categories only.

Lookups (:func:`related_labels`, :func:`plausible_absent`) live here too; they are pure functions of
these tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

COCO_CATEGORIES: frozenset[str] = frozenset({
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
})

SCENES: dict[str, tuple[str, ...]] = {
    "street": ("car", "bus", "truck", "motorcycle", "bicycle", "traffic light", "stop sign", "fire hydrant",
               "parking meter", "bench", "person", "umbrella", "handbag", "backpack", "dog", "trash can",
               "mailbox", "scooter", "van", "taxi"),
    "kitchen": ("refrigerator", "oven", "microwave", "sink", "toaster", "bottle", "cup", "bowl", "knife",
                "spoon", "fork", "wine glass", "dining table", "chair", "potted plant", "clock", "vase", "banana",
                "apple", "orange", "kettle", "pan", "blender", "cutting board", "dishwasher", "jar"),
    "living room": ("couch", "chair", "tv", "remote", "potted plant", "book", "clock", "vase", "dining table",
                    "laptop", "cat", "dog", "teddy bear", "lamp", "pillow", "rug", "fireplace", "bookshelf",
                    "coffee table"),
    "office": ("laptop", "keyboard", "mouse", "tv", "cell phone", "book", "chair", "cup", "bottle", "scissors",
               "printer", "lamp", "monitor", "pen", "desk", "telephone", "stapler"),
    "bedroom": ("bed", "teddy bear", "book", "clock", "laptop", "tv", "chair", "cell phone", "pillow", "lamp",
                "blanket", "nightstand", "dresser", "suitcase"),
    "bathroom": ("toilet", "sink", "toothbrush", "hair drier", "bottle", "cup", "towel", "mirror", "bathtub",
                 "soap", "toilet paper", "shower curtain"),
    "dining": ("dining table", "chair", "cup", "fork", "knife", "spoon", "bowl", "wine glass", "bottle", "pizza",
               "sandwich", "cake", "donut", "hot dog", "broccoli", "carrot", "plate", "napkin", "candle", "menu"),
    "park": ("bench", "dog", "frisbee", "kite", "sports ball", "bicycle", "person", "umbrella", "bird",
             "trash can", "picnic table", "stroller", "fountain", "skateboard"),
    "beach": ("surfboard", "umbrella", "kite", "boat", "person", "bird", "dog", "towel", "beach chair", "bucket",
              "frisbee"),
    "farm": ("cow", "sheep", "horse", "dog", "bird", "truck", "tractor", "barn", "goat", "pig", "chicken"),
    "sports field": ("sports ball", "baseball bat", "baseball glove", "tennis racket", "frisbee", "person",
                     "bench", "net", "goal", "scoreboard"),
    "snow": ("skis", "snowboard", "person", "ski pole", "sled", "backpack"),
    "harbor": ("boat", "bird", "person", "dock", "buoy", "kayak", "surfboard"),
    "airport": ("airplane", "truck", "car", "bus", "person", "suitcase", "luggage cart"),
    "railway": ("train", "person", "bench", "traffic light", "clock", "suitcase", "backpack"),
    "savanna": ("elephant", "zebra", "giraffe", "bird", "bear", "antelope", "rhino"),
    "market": ("banana", "apple", "orange", "broccoli", "carrot", "bottle", "basket", "umbrella", "scale",
               "crate"),
    "desk": ("laptop", "keyboard", "mouse", "cell phone", "book", "cup", "scissors", "lamp", "pen", "notebook",
             "clock", "remote"),
}
"""Scene -> categories seen together. Order carries no meaning."""

SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("person", "people", "man", "men", "woman", "women", "boy", "girl", "child", "children", "kid", "kids",
     "lady", "guy", "baby", "adult", "human", "player", "tennis player", "skier", "surfer", "skateboarder",
     "snowboarder", "rider", "pedestrian", "batter", "catcher", "umpire", "crowd", "spectator", "passenger",
     "worker", "chef", "police officer", "officer", "student", "teenager", "toddler"),
    ("car", "cars", "automobile", "taxi", "cab", "suv", "sedan", "vehicle", "van", "police car"),
    ("truck", "pickup", "pickup truck", "lorry", "vehicle", "van", "fire truck", "tractor"),
    ("bus", "school bus", "double decker", "vehicle", "van"),
    ("motorcycle", "motorbike", "motor bike", "bike", "scooter", "moped", "vehicle"),
    ("bicycle", "bike", "cycle", "vehicle"),
    ("airplane", "plane", "aeroplane", "jet", "aircraft", "airliner", "vehicle"),
    ("boat", "ship", "sailboat", "canoe", "kayak", "yacht", "ferry", "vehicle"),
    ("train", "locomotive", "railcar", "tram", "streetcar", "vehicle", "subway"),
    ("dining table", "table", "desk", "coffee table", "picnic table", "end table", "nightstand", "furniture"),
    ("couch", "sofa", "loveseat", "furniture"),
    ("chair", "seat", "stool", "armchair", "beach chair", "furniture"),
    ("bench", "seat", "furniture"),
    ("bed", "furniture"),
    ("cabinet", "cupboard", "dresser", "drawer", "nightstand", "bookshelf", "shelf", "furniture"),
    ("tv", "television", "monitor", "screen", "tv monitor", "computer monitor", "display", "computer"),
    ("laptop", "computer", "notebook computer", "notebook"),
    ("cell phone", "phone", "cellphone", "mobile phone", "smartphone", "telephone"),
    ("cup", "mug", "coffee cup", "teacup", "glass", "wine glass"),
    ("wine glass", "glass", "goblet", "cup"),
    ("bottle", "water bottle", "beer bottle", "wine bottle", "jar"),
    ("bowl", "dish"),
    ("plate", "dish", "platter", "saucer"),
    ("fork", "knife", "spoon", "utensil", "utensils", "silverware", "cutlery"),
    ("potted plant", "plant", "houseplant", "flower pot", "pot", "flowers", "flower"),
    ("vase", "pot", "flower pot"),
    ("pan", "pot", "frying pan", "skillet"),
    ("dog", "puppy", "pup", "animal"),
    ("cat", "kitten", "kitty", "animal"),
    ("horse", "pony", "foal", "animal"),
    ("sheep", "lamb", "ram", "animal"),
    ("cow", "cattle", "bull", "calf", "ox", "animal"),
    ("goat", "animal"),
    ("pig", "animal"),
    ("bird", "pigeon", "seagull", "gull", "duck", "goose", "parrot", "chicken", "animal"),
    ("elephant", "animal"),
    ("bear", "teddy bear", "animal"),
    ("zebra", "animal"),
    ("giraffe", "animal"),
    ("antelope", "animal"),
    ("rhino", "animal"),
    ("teddy bear", "stuffed animal", "toy", "bear"),
    ("umbrella", "parasol"),
    ("handbag", "purse", "bag"),
    ("backpack", "bag", "rucksack"),
    ("suitcase", "luggage", "bag"),
    ("sports ball", "ball", "soccer ball", "tennis ball", "baseball", "football", "basketball", "volleyball"),
    ("skis", "ski"),
    ("surfboard", "board"),
    ("skateboard", "board"),
    ("snowboard", "board"),
    ("tie", "necktie"),
    ("book", "books", "novel", "magazine", "notebook"),
    ("remote", "remote control", "controller"),
    ("mouse", "computer mouse"),
    ("keyboard", "computer keyboard"),
    ("hair drier", "hair dryer", "blow dryer"),
    ("refrigerator", "fridge", "freezer", "appliance"),
    ("oven", "stove", "range", "cooker", "appliance"),
    ("microwave", "microwave oven", "appliance"),
    ("toaster", "appliance"),
    ("dishwasher", "appliance"),
    ("sink", "basin"),
    ("toilet", "commode"),
    ("bathtub", "tub", "bath"),
    ("donut", "doughnut", "food"),
    ("hot dog", "hotdog", "sausage", "food"),
    ("sandwich", "burger", "hamburger", "sub", "food"),
    ("pizza", "food"),
    ("cake", "cupcake", "dessert", "food"),
    ("banana", "fruit", "food"),
    ("apple", "fruit", "food"),
    ("orange", "fruit", "food", "tangerine"),
    ("broccoli", "vegetable", "vegetables", "food"),
    ("carrot", "vegetable", "vegetables", "food"),
    ("traffic light", "stoplight", "traffic signal", "signal"),
    ("stop sign", "sign", "street sign"),
    ("fire hydrant", "hydrant"),
    ("parking meter", "meter"),
    ("trash can", "garbage can", "bin", "trash bin", "dumpster", "waste basket"),
    ("lamp", "light", "lamp shade", "table lamp"),
    ("pillow", "cushion"),
    ("rug", "carpet", "mat"),
    ("blanket", "comforter", "quilt", "sheet"),
    ("towel", "napkin", "cloth"),
    ("napkin", "paper towel", "towel"),
    ("pen", "pencil", "marker"),
    ("telephone", "phone"),
    ("basket", "crate", "box", "container"),
    ("tractor", "vehicle"),
    ("scooter", "vehicle"),
    ("kite",),
    ("frisbee", "disc"),
)
"""Groups of labels that may name the same object. Groups overlap ("bike", "vehicle")."""


def _key(label: str) -> str:
    return " ".join(label.split()).lower()


@lru_cache(maxsize=1)
def _groups_by_label() -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for group in SYNONYMS:
        for label in group:
            out.setdefault(label, set()).update(group)
    return {k: frozenset(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def _scene_sets() -> dict[str, frozenset[str]]:
    return {scene: frozenset(cats) for scene, cats in SCENES.items()}


@lru_cache(maxsize=1)
def scene_vocabulary() -> frozenset[str]:
    """Every category some scene lists."""
    return frozenset(c for cats in SCENES.values() for c in cats)


@lru_cache(maxsize=8192)
def related_labels(label: str) -> frozenset[str]:
    """``label`` and every label sharing a synonym group with it (normalized, lower-case)."""
    k = _key(label)
    return _groups_by_label().get(k, frozenset()) | {k}


@lru_cache(maxsize=16384)
def _head_words(label: str) -> frozenset[str]:
    from .grammar import plural

    words = _key(label).split(" ")
    return frozenset({words[-1], plural(words[-1])})


@lru_cache(maxsize=16384)
def may_name_same(a: str, b: str) -> bool:
    """Whether labels ``a`` and ``b`` might describe the same object: same synonym group, one is a
    kind of the other in the taxonomy of ``data/kinds.json`` ("person" / "pitcher"), both are kinds of
    an overlapping kind ("man" / "batter"), or one's head noun is the other's head noun
    ("coffee table" / "table", "books" / "book")."""
    ka, kb = _key(a), _key(b)
    if ka == kb or kb in related_labels(ka) or ka in related_labels(kb):
        return True
    ua, ub = kinds_of(ka), kinds_of(kb)
    if ka in ub or kb in ua or ua & ub & _kind_data()[1]["overlapping"]:
        return True
    return bool(_head_words(ka) & _head_words(kb))


@lru_cache(maxsize=1)
def _kind_data() -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """``data/kinds.json`` as lookups: (label -> its kinds, transitive, a kind itself included;
    name -> label set for ``non_objects``, ``overlapping``, ``wearers`` and ``wearable``)."""
    data = json.loads((Path(__file__).parent / "data" / "kinds.json").read_text(encoding="utf-8"))
    parents: dict[str, set[str]] = {}
    for kind, members in data["taxonomy"].items():
        parents.setdefault(_key(kind), set())
        for m in members:
            parents.setdefault(_key(m), set()).add(_key(kind))
    ancestors: dict[str, frozenset[str]] = {}
    for label in parents:
        seen = {label} if label in data["taxonomy"] else set()
        todo = list(parents[label])
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(parents.get(k, ()))
        ancestors[label] = frozenset(seen)
    sets = {name: frozenset(_key(x) for x in data[name])
            for name in ("non_objects", "overlapping", "wearers", "wearable")}
    return ancestors, sets


@lru_cache(maxsize=16384)
def kinds_of(label: str) -> frozenset[str]:
    """The kinds ``label`` is or belongs to in ``data/kinds.json`` ("batter" -> player, person), by its
    own spelling or else its head noun ("baseball cap" -> clothing); empty when unknown."""
    k = _key(label)
    table = _kind_data()[0]
    if k in table:
        return table[k]
    return table.get(k.rsplit(" ", 1)[-1], frozenset())


def _is_kind(label: str, kinds: frozenset[str]) -> bool | None:
    """Whether ``label`` belongs to one of ``kinds``; ``None`` when the taxonomy does not know it."""
    mine = kinds_of(label)
    return bool(mine & kinds) if mine else None


@lru_cache(maxsize=16384)
def kind_noun(label: str) -> str:
    """The plain noun for what ``label`` names: "person" for a batter, "animal" for a dog, else "object"."""
    kinds = kinds_of(label)
    return next((k for k in ("person", "animal") if k in kinds), "object")


@lru_cache(maxsize=16384)
def is_object_label(label: str) -> bool:
    """Whether ``label`` names a countable thing in the picture (not "game", "scene", "view", ...)."""
    return _key(label) not in _kind_data()[1]["non_objects"]


@lru_cache(maxsize=16384)
def plausible_relation(subject: str, predicate_group: str, obj: str) -> bool:
    """Whether the kinds of ``subject`` and ``obj`` allow the predicate: a wearer (``wearing``) is a
    person or an animal and the worn thing is clothing (``worn by`` the other way round). Labels the
    taxonomy does not know are allowed; every other predicate is allowed."""
    t = _kind_data()[1]
    if predicate_group == "worn by":
        subject, obj, predicate_group = obj, subject, "wearing"
    if predicate_group != "wearing":
        return True
    return _is_kind(subject, t["wearers"]) is not False and _is_kind(subject, t["wearable"]) is not True \
        and _is_kind(obj, t["wearable"]) is not False


def scenes_of(labels: Iterable[str]) -> dict[str, int]:
    """Scene -> how many of ``labels`` (or their synonyms) it lists; scenes listing none are left out."""
    vocab = _scene_sets()
    out: dict[str, int] = {}
    for label in sorted({_key(lbl) for lbl in labels}):
        names = related_labels(label)
        for scene, cats in vocab.items():
            if names & cats:
                out[scene] = out.get(scene, 0) + 1
    return out


def plausible_absent(present: Iterable[str], seen: Iterable[str] = (),
                     coco_only: bool = False) -> list[tuple[str, int]]:
    """Categories absent from the image but plausible for its scene, best first.

    ``present``: labels confidently in the image (they pick the scenes); ``seen``: every label the
    graph mentions at any score (none of them, nor anything that may name the same object, is
    returned). Each result is ``(category, support)``, support = how many present labels share a
    scene with it; ties are ordered by name.
    """
    present = sorted({_key(p) for p in present})
    blocked = sorted({_key(s) for s in seen} | set(present))
    support: dict[str, int] = {}
    for scene, count in scenes_of(present).items():
        for cat in SCENES[scene]:
            if coco_only and cat not in COCO_CATEGORIES:
                continue
            support[cat] = support.get(cat, 0) + count
    # may_name_same(cat, b) for any b, with the union of what the blocked labels relate to:
    blocked_set = frozenset(blocked)
    blocked_related = frozenset().union(*(related_labels(b) for b in blocked))
    blocked_heads = frozenset().union(*(_head_words(b) for b in blocked))
    out = [(cat, n) for cat, n in support.items()
           if cat not in blocked_related and blocked_set.isdisjoint(related_labels(cat))
           and blocked_heads.isdisjoint(_head_words(cat))]
    return sorted(out, key=lambda cn: (-cn[1], cn[0]))
