"""Write assets/labels/part-00000.jsonl: hand labels (COCO names) of every bundled photo."""
from scene_graphs.io import iter_graphs, write_graphs
from scene_graphs.model import Box, Object, Relation, SceneGraph, TextRegion
from scene_graphs.perception.images import find_images, load_image

ROOT = "assets/images"
LABELS = {
    "street_bus.jpg": (
        [("bus", "bus", (8, 138, 476, 432)), ("man_coat", "person", (31, 236, 142, 532)),
         ("man_red_shirt", "person", (134, 241, 204, 508)), ("walker_right", "person", (396, 233, 480, 521)),
         ("walker_left", "person", (0, 327, 46, 513))],
        [("walker_left", "left of", "man_coat"), ("walker_left", "left of", "man_red_shirt"),
         ("walker_left", "left of", "walker_right"), ("man_coat", "left of", "man_red_shirt"),
         ("man_coat", "left of", "walker_right"), ("man_red_shirt", "left of", "walker_right"),
         ("man_coat", "next to", "man_red_shirt"), ("walker_left", "next to", "man_coat"),
         ("man_coat", "in front of", "bus"), ("man_red_shirt", "in front of", "bus"),
         ("walker_left", "in front of", "bus"), ("walker_right", "in front of", "bus")],
        ["M1 SEVILLA", "EMT", "MADRID", "eléctricamEMTe", "cero", "emisiones", "10"]),
    "indoor_coffee_cup.jpg": (
        [("cup", "cup", (172, 18, 409, 311)), ("spoon", "spoon", (326, 66, 423, 325)),
         ("table", "dining table", (0, 0, 600, 400))],
        [("cup", "on", "table"), ("spoon", "on", "table"), ("spoon", "right of", "cup"), ("spoon", "next to", "cup")],
        []),
    "people_astronaut_collins.jpg": ([("astronaut", "person", (20, 15, 365, 512))], [], []),
    "people_cameraman.jpg": ([("cameraman", "person", (0, 65, 330, 512))], [], []),
    "people_grace_hopper.jpg": (
        [("hopper", "person", (15, 20, 512, 600)), ("tie", "tie", (215, 405, 300, 478))], [], ["G.M. HOPPER"]),
    "vehicle_motorcycle_garage.jpg": (
        [("motorcycle", "motorcycle", (80, 64, 592, 390)), ("bicycle", "bicycle", (0, 100, 100, 200)),
         ("bench", "bench", (41, 91, 243, 267))],
        [("bicycle", "left of", "motorcycle"), ("bicycle", "behind", "motorcycle"), ("bench", "behind", "motorcycle"),
         ("bicycle", "behind", "bench")],
        ["YAMAHA"]),
    "vehicle_rocket_launch.jpg": ([], [], []),
    "objects_greek_coins.jpg": ([], [], []),
    "more/animal_cat_chelsea.jpg": ([("cat", "cat", (0, 0, 410, 300))], [], []),
    "text_printed_page.png": ([], [], [
        "Region-based segmentation", "Let us first determine markers of the coins and the",
        "background. These markers are pixels that we can label",
        "unambiguously as either object or background. Here,", "the markers are found at the two extreme parts of the",
        "histogram of grey values:", ">>> markers = np.zeros_like(coins)"]),
}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above", "on": "under",
           "in front of": "behind", "behind": "in front of"}
SYMMETRIC = {"next to"}

graphs = []
for path in find_images(ROOT):
    item = load_image(path, ROOT)
    objects, relations, text = LABELS[item.path]
    objs = tuple(Object(i, label, Box(*map(float, box)), 1.0) for i, label, box in objects)
    rels = {}
    for s, p, o in relations:
        rels[(s, p, o)] = Relation(s, p, o, 1.0, "human")
        if p in INVERSE:
            rels[(o, INVERSE[p], s)] = Relation(o, INVERSE[p], s, 1.0, "human")
        if p in SYMMETRIC:
            rels[(o, p, s)] = Relation(o, p, s, 1.0, "human")
    texts = tuple(TextRegion(f"t{i}", t, Box(0, 0, item.width, item.height), 1.0) for i, t in enumerate(text))
    graphs.append(SceneGraph(item.image_id, item.width, item.height, item.path, item.sha256, objects=objs,
                             relations=tuple(rels.values()), text=texts,
                             fields=frozenset({"objects", "relations", "text"}),
                             provenance={"annotator": "human", "note": "hand labels, COCO names; text boxes span "
                                         "the image (strings only)"}))
write_graphs("assets/labels/part-00000.jsonl", graphs)
print(len(graphs))
