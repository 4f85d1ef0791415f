"""The viewer's HTTP side: JSON routes agree with the store, overlays are PNGs, nothing outside the
output folder and the image root can be read (``..``, encoded ``..``, absolute paths, symlinks), only
GET/HEAD, loopback Host names only. The page itself is tested in a browser in test_viewer_browser.py."""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from mmgen.store import open_output
from mmgen.store import safe_join
from mmgen.viewer.server import make_server
from tests.test_inspect import ASSETS, build_output

SECRET = b"top secret, outside every served root"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    base = tmp_path_factory.mktemp("viewer")
    out = build_output(base / "out", curate=True)
    (base / "secret.txt").write_bytes(SECRET)
    (out / "qa" / "leak.txt").symlink_to(base / "secret.txt")
    (out / "qa" / "leakdir").symlink_to(base, target_is_directory=True)
    server = make_server(open_output(out), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1], out
    server.shutdown()
    server.server_close()


def request(site: tuple[str, int, Path], path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A raw request: the path is sent exactly as given (no client-side normalization)."""
    host, port, _ = site
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", (headers or {}).get("Host", f"127.0.0.1:{port}"))
    conn.endheaders()
    res = conn.getresponse()
    body = res.read()
    conn.close()
    return res.status, {k.lower(): v for k, v in res.getheaders()}, body


def get_json(site: tuple[str, int, Path], path: str) -> dict:
    status, headers, body = request(site, path)
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def test_summary_counts(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    s = get_json(site, "/api/summary")
    assert s["images"] == len(output) and s["records"] == output.count() > 0
    assert s["programs"] == output.programs and s["answer_types"] == output.answer_types
    assert s["curated"] is True and s["statuses"] == ["curated", "dropped", "uncurated"]
    assert s["layers"] == ["boxes", "masks", "labels", "relations", "depth", "text"]


def test_images_route_filters_and_pages(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    data = get_json(site, "/api/images")
    assert data["total"] == len(output) and [i["id"] for i in data["images"]] == list(output.image_ids)
    assert [i["qa"] for i in data["images"]] == [output.count(i) for i in output.image_ids]
    page = get_json(site, "/api/images?offset=1&limit=2")
    assert [i["id"] for i in page["images"]] == list(output.image_ids[1:3]) and page["total"] == len(output)
    dropped = get_json(site, "/api/images?status=dropped&program=single.exists")
    assert {i["id"]: i["qa"] for i in dropped["images"]} == \
        {i: n for i in output.image_ids if (n := output.count(i, program="single.exists", status="dropped"))}
    bus = get_json(site, "/api/images?label=BUS")
    assert [i["path"] for i in bus["images"]] == ["street_bus.jpg"]


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=100000", "limit=x", "status=gone"])
def test_bad_query_values_are_400(site: tuple[str, int, Path], query: str) -> None:
    status, _, body = request(site, f"/api/images?{query}")
    assert status == 400 and "error" in json.loads(body)


def test_image_route_gives_graph_and_filtered_records(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    image_id = output.resolve_image_id("indoor_coffee_cup.jpg")
    data = get_json(site, f"/api/image?id={image_id}")
    graph = output.graph(image_id)
    assert data["has_image"] is True
    assert [o["id"] for o in data["graph"]["objects"]] == [o.id for o in graph.objects]
    assert all(set(o["mask"]) == {"area"} for o in data["graph"]["objects"])  # RLE counts are not sent
    assert [o["mask"]["area"] for o in data["graph"]["objects"]] == [o.mask.area for o in graph.objects]
    assert [r["id"] for r in data["records"]] == [r["id"] for r in output.records(image_id)]
    assert data["total_records"] == len(data["records"])
    filtered = get_json(site, f"/api/image?id={image_id}&status=curated")
    assert [r["id"] for r in filtered["records"]] == [r["id"] for r in output.records(image_id, status="curated")]
    assert {r["_status"] for r in filtered["records"]} == {"curated"}
    assert request(site, "/api/image?id=nope")[0] == 404


def test_verify_route_checks_every_record_of_the_image(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    image_id = output.image_ids[0]
    checks = get_json(site, f"/api/verify?id={quote(image_id)}")
    assert set(checks) == {r["id"] for r in output.records(image_id)}
    assert all(c == {"ok": True, "message": ""} for c in checks.values())


def test_overlay_is_a_png_of_the_requested_size(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    image_id = output.resolve_image_id("street_bus.jpg")
    status, headers, body = request(site, f"/overlay?id={image_id}&layers=boxes,masks&max_side=320")
    assert status == 200 and headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(body))
    g = output.graph(image_id)
    assert max(img.size) == 320 and img.size[0] / img.size[1] == pytest.approx(g.width / g.height, rel=0.01)
    bare = Image.open(io.BytesIO(request(site, f"/overlay?id={image_id}&layers=&max_side=320")[2]))
    assert np.array_equal(np.asarray(bare), np.asarray(output.draw(image_id, show=(), max_side=320)))
    assert not np.array_equal(np.asarray(bare), np.asarray(img))  # the layers changed the picture
    default = Image.open(io.BytesIO(request(site, f"/overlay?id={image_id}&max_side=320")[2]))
    assert np.array_equal(np.asarray(default), np.asarray(output.draw(image_id, max_side=320)))  # every layer
    assert request(site, f"/overlay?id={image_id}&layers=glow")[0] == 400
    small = output.resolve_image_id("text_printed_page.png")  # 384x191: drawn larger, not stretched in the page
    img = Image.open(io.BytesIO(request(site, f"/overlay?id={small}&min_side=640&max_side=1024")[2]))
    assert img.size == (640, round(191 * 640 / 384))


def test_the_image_file_is_served_by_id(site: tuple[str, int, Path]) -> None:
    output = open_output(site[2])
    image_id = output.resolve_image_id("more/animal_cat_chelsea.jpg")
    status, headers, body = request(site, f"/image?id={image_id}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body == (ASSETS / "images" / "more" / "animal_cat_chelsea.jpg").read_bytes()


def test_page_and_static_files_with_security_headers(site: tuple[str, int, Path]) -> None:
    status, headers, body = request(site, "/")
    assert status == 200 and b'<script src="/static/app.js">' in body
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        status, headers, _ = request(site, f"/static/{name}")
        assert status == 200 and kind in headers["content-type"]


def test_files_inside_the_roots_are_served(site: tuple[str, int, Path]) -> None:
    out = site[2]
    status, _, body = request(site, "/files/out/qa/summary.json")
    assert status == 200 and body == (out / "qa" / "summary.json").read_bytes()
    status, _, body = request(site, "/files/images/more/animal_cat_chelsea.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"
    status, _, body = request(site, "/files/out/qa/" + quote("manifest.json"))
    assert status == 200


TRAVERSALS = [
    "/files/out/../secret.txt",
    "/files/out/qa/../../secret.txt",
    "/files/out/%2e%2e/secret.txt",
    "/files/out/%2E%2E/%2E%2E/etc/passwd",
    "/files/out/qa%2f..%2f..%2fsecret.txt",
    "/files/out/%252e%252e/secret.txt",
    "/files/out/..%5csecret.txt",
    "/files/out//etc/passwd",
    "/files/out/%2fetc%2fpasswd",
    "/files/images/../../../../etc/passwd",
    "/files/images//etc/passwd",
    "/files/out/qa/leak.txt",
    "/files/out/qa/leakdir/secret.txt",
    "/files/out/qa/summary.json%00.png",
    "/files/out/",
    "/files/out/qa",
    "/files/elsewhere/etc/passwd",
    "/static/../../store.py",
    "/static/%2e%2e/server.py",
    "/static//etc/passwd",
    "/image?id=../secret.txt",
    "/../secret.txt",
    "/files/out/%ff%fe",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_roots_is_served(site: tuple[str, int, Path], path: str) -> None:
    status, _, body = request(site, path)
    assert status in (400, 404), (status, body[:100])
    assert SECRET not in body and b"root:" not in body and b"def " not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_only_reads_are_allowed(site: tuple[str, int, Path], method: str) -> None:
    status, headers, _ = request(site, "/api/summary", method=method)
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_head_has_headers_and_no_body(site: tuple[str, int, Path]) -> None:
    status, headers, body = request(site, "/api/summary", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


@pytest.mark.parametrize("host, ok", [("localhost:1", True), ("127.0.0.1", True), ("[::1]:8765", True),
                                      ("evil.example:8765", False), ("127.0.0.1.evil.example", False), ("", False)])
def test_only_loopback_host_names_are_answered(site: tuple[str, int, Path], host: str, ok: bool) -> None:
    status, _, _ = request(site, "/api/summary", headers={"Host": host})
    assert (status == 200) == ok and (ok or status == 403)


@pytest.mark.parametrize("relative, ok", [
    ("a.txt", True), ("sub/b.txt", True), ("sub/../a.txt", False), ("../out.txt", False), ("/etc/passwd", False),
    ("", False), ("sub", False), ("sub//b.txt", False), ("sub\\b.txt", False), ("a.txt\x00", False),
    ("inlink.txt", True), ("outlink.txt", False), ("outdir/out.txt", False), ("missing.txt", False),
])
def test_safe_join(tmp_path: Path, relative: str, ok: bool) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("b")
    (tmp_path / "out.txt").write_text("out")
    (root / "inlink.txt").symlink_to(root / "a.txt")
    (root / "outlink.txt").symlink_to(tmp_path / "out.txt")
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)
    got = safe_join(root, relative)
    assert (got is not None) == ok
    if got is not None:
        assert got.is_relative_to(root.resolve()) and got.is_file()


def test_view_command_refuses_a_folder_without_graphs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mmgen.cli import main

    result = CliRunner().invoke(main, ["view", str(tmp_path)])
    assert result.exit_code == 1 and "no scene graphs" in result.output


def test_view_command_serves_until_stopped(tmp_path: Path, site: tuple[str, int, Path]) -> None:
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "mmgen", "view", str(site[2]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        match = re.match(r"mmgen viewer on http://127\.0\.0\.1:(\d+)/ +\((\d+) images, (\d+) QA records\)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line  # type: ignore[union-attr]
        port = int(match.group(1))
        summary = get_json(("127.0.0.1", port, site[2]), "/api/summary")
        assert summary["images"] == int(match.group(2)) and summary["records"] == int(match.group(3))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
