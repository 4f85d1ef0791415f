"""The viewer page end to end in real headless Chromium (Debian's ``chromium`` driven by Playwright):
grid, filters, label search, the image page with its overlay (checked on a screenshot), layer
toggles, scene graph, every QA record with its verification, curation badges, and data shown as
text (an OCR string holding HTML stays text). The page runs under its own Content-Security-Policy.

Skipped when Playwright or ``/usr/bin/chromium`` is missing (``apt-get install chromium``,
``pip install playwright``; never ``playwright install``).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmgen.store import open_output
from mmgen.viewer.server import make_server
from scene_graphs.draw import object_color
from tests.test_inspect import XSS_TEXT, build_output

CHROMIUM = os.environ.get("MMGEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 20_000

# In CI (.ci/run installs both) a missing browser is a failure, not a silent skip.
if os.environ.get("CI"):
    import playwright.sync_api as sync_api

    assert Path(CHROMIUM).is_file(), f"CI needs Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    out = build_output(tmp_path_factory.mktemp("browser") / "out", curate=True, xss=True)
    server = make_server(open_output(out), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url, out
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object, site: tuple[str, Path]) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.problems = problems
    yield pg
    context.close()
    assert not problems, problems  # no script error, no CSP violation, no failed request


def open_page(page: object, url: str) -> None:
    page.goto(url)  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-ready='1']", state="attached")  # type: ignore[attr-defined]


def overlay_pixels(page: object) -> np.ndarray:
    shot = page.locator("#overlay").screenshot()  # type: ignore[attr-defined]
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(int)


def wait_image(page: object, img: object) -> None:
    """Wait until an <img> has loaded a picture (polling: the page's CSP forbids wait_for_function)."""
    for _ in range(200):
        if img.evaluate("i => i.complete && i.naturalWidth > 0"):  # type: ignore[attr-defined]
            return
        page.wait_for_timeout(50)  # type: ignore[attr-defined]
    raise AssertionError("image did not load")


def wait_overlay_loaded(page: object, src_part: str) -> None:
    img = page.locator("#overlay")  # type: ignore[attr-defined]
    sync_api.expect(img).to_have_attribute("src", re.compile(src_part))
    wait_image(page, img)


def test_grid_filters_and_label_search(page: object, site: tuple[str, Path]) -> None:
    url, out = site
    output = open_output(out)
    open_page(page, url)
    cards = page.locator("#grid .card")
    sync_api.expect(cards).to_have_count(len(output))
    for image_id in output.image_ids:
        counts = page.locator(f".card[data-id='{image_id}'] .counts").text_content()
        info = output.info(image_id)
        assert counts == f"{info.objects} objects · {info.relations} relations · {info.text} text · {info.qa} QA"
    thumbs = page.locator("#grid .card img")
    for i in range(thumbs.count()):
        thumbs.nth(i).scroll_into_view_if_needed()
        wait_image(page, thumbs.nth(i))
    # a program with records on some images but not all, so the filter visibly narrows the grid
    program = min((p for p in output.programs
                   if 0 < len(output.images(program=p)) < len(output.image_ids)),
                  key=lambda p: (len(output.images(program=p)), p))
    page.select_option("#f-program", program)
    expected = [i.image_id for i in output.images(program=program)]
    sync_api.expect(cards).to_have_count(len(expected))
    assert [cards.nth(i).get_attribute("data-id") for i in range(cards.count())] == expected
    page.select_option("#f-program", "")
    sync_api.expect(cards).to_have_count(len(output))
    page.fill("#f-label", "motorcycle")
    sync_api.expect(cards).to_have_count(1)
    assert cards.first.get_attribute("data-id") == output.find("motorcycle")[0]
    page.fill("#f-label", "no such label")
    sync_api.expect(cards).to_have_count(0)
    sync_api.expect(page.locator("#grid-count")).to_have_text("0 images match the filters")


def test_image_page_overlay_graph_records_and_verification(page: object, site: tuple[str, Path]) -> None:
    url, out = site
    output = open_output(out)
    image_id = output.resolve_image_id("street_bus.jpg")
    graph = output.graph(image_id)
    open_page(page, url)
    page.click(f".card[data-id='{image_id}']")
    sync_api.expect(page.locator("#image-title")).to_have_text("street_bus.jpg")
    wait_overlay_loaded(page, "layers=boxes,masks,labels,relations,depth,text")
    assert page.locator("#overlay").evaluate("i => i.naturalWidth") == graph.width

    # the scene graph, as text (the OCR string holding HTML stays a string)
    sync_api.expect(page.locator("#objects tr.object")).to_have_count(len(graph.objects))
    sync_api.expect(page.locator("#relations li")).to_have_count(len(graph.relations))
    sync_api.expect(page.locator("#text-regions li")).to_have_count(len(graph.text))
    assert any(XSS_TEXT in t for t in page.locator("#text-regions li").all_text_contents())
    assert page.locator("#pwned").count() == 0 and page.locator("body").get_attribute("data-pwned") is None

    # every QA record, with program, rationale, curation status, then verification
    records = list(output.records(image_id))
    cards = page.locator(".qa-record")
    sync_api.expect(cards).to_have_count(len(records))
    assert [cards.nth(i).get_attribute("data-id") for i in range(len(records))] == [r["id"] for r in records]
    first = cards.first
    assert records[0]["program"] in first.locator(".badge.program").text_content()
    assert records[0]["rationale"] in first.locator(".rationale").text_content()
    statuses = [(r["_status"] + (f": {r['_reason']}" if r["_reason"] else "")) for r in records]
    assert page.locator(".qa-record .badge.status").all_text_contents() == statuses
    sync_api.expect(page.locator(".verify-badge.pending")).to_have_count(0)
    sync_api.expect(page.locator(".verify-badge.verified")).to_have_count(len(records))

    # the overlay on screen: the photo with coloured outlines
    full = overlay_pixels(page)
    assert full.std() > 20  # a photo, not a flat canvas
    assert near(full, object_color(0)) > 200  # the first object's outline and label tag


def near(a: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> int:
    return int((np.abs(a - np.array(color)).max(axis=-1) <= tol).sum())


def test_overlay_layer_toggles_change_the_picture(page: object, site: tuple[str, Path]) -> None:
    url, out = site
    output = open_output(out)
    image_id = output.resolve_image_id("indoor_coffee_cup.jpg")  # the graph with masks
    open_page(page, url + f"#/image/{image_id}")
    wait_overlay_loaded(page, "layers=boxes,masks,labels,relations,depth,text")
    for layer in ("boxes", "masks", "labels", "relations", "depth", "text"):
        page.uncheck(f".layer-toggle input[value='{layer}']")
    wait_overlay_loaded(page, "layers=&")
    bare = overlay_pixels(page)
    assert bare.std() > 20
    page.check(".layer-toggle input[value='boxes']")
    wait_overlay_loaded(page, "layers=boxes&")
    boxes = overlay_pixels(page)
    assert near(boxes, object_color(0)) > near(bare, object_color(0)) + 200
    assert 0 < (np.abs(boxes - bare).max(axis=-1) > 40).mean() < 0.2  # outlines; the rest untouched
    page.check(".layer-toggle input[value='masks']")
    wait_overlay_loaded(page, "layers=boxes,masks&")
    masked = overlay_pixels(page)
    tinted = (np.abs(masked - boxes).max(axis=-1) > 20).mean()
    assert tinted > 0.3  # the table's and the cup's masks cover much of the photo


def test_curation_filter_and_program_filter_on_the_image_page(page: object, site: tuple[str, Path]) -> None:
    url, out = site
    output = open_output(out)
    image_id = max(output.image_ids, key=lambda i: output.count(i, status="dropped"))
    open_page(page, url + f"#/image/{image_id}?status=dropped")
    dropped = list(output.records(image_id, status="dropped"))
    sync_api.expect(page.locator(".qa-record")).to_have_count(len(dropped))
    sync_api.expect(page.locator("#qa-count")).to_have_text(
        f"({len(dropped)} of {output.count(image_id)} match the filters)")
    assert {t.split(":")[0] for t in page.locator(".badge.status").all_text_contents()} == {"dropped"}
    assert page.locator(".drop-detail").all_text_contents() == [f"Dropped: {r['_detail']}" for r in dropped]
    assert page.input_value("#f-status") == "dropped"
    program = dropped[0]["program"]
    page.select_option("#f-program", program)
    sync_api.expect(page.locator(".qa-record")).to_have_count(output.count(image_id, program=program,
                                                                           status="dropped"))
    page.click("#back")
    sync_api.expect(page.locator("#grid .card")).to_have_count(len(output.images(program=program, status="dropped")))
