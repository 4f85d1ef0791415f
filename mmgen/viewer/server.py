"""A small read-only web viewer over an output folder (stdlib ``http.server``, no framework).

Routes (all GET/HEAD; anything else is refused):

=============================  ==========================================================================
``/``                          the page (``static/index.html``; ``static/app.js`` and ``style.css``)
``/api/summary``               counts, programs, answer types, curation, layers
``/api/images?…``              the grid: images with counts, filtered by ``program``, ``answer_type``,
                               ``status`` (curated / dropped / uncurated) and ``label``; ``offset``, ``limit``
``/api/image?id=…``            one image: its scene graph (masks left out), its QA records (same filters)
``/api/verify?id=…``           ``mmgen verify`` on that image's records, run on demand and cached
``/overlay?id=…&layers=…``     the overlay PNG (``max_side`` / ``min_side`` bound its size)
``/image?id=…``                the image file itself (found below the image root)
``/files/out/PATH``            a file inside the output folder; ``/files/images/PATH`` one in the image root
=============================  ==========================================================================

Nothing outside the output folder, the image root and the page's own files is ever read: request
paths go through :func:`mmgen.store.safe_join` (no ``..``, no absolute paths, symlinks resolved
and checked). The server binds to 127.0.0.1 by default and then only answers requests whose ``Host``
is a loopback name (a web page elsewhere cannot reach it through DNS rebinding).
"""

from __future__ import annotations

import io
import ipaddress
import logging
import mimetypes
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from ..store import STATUSES, Output, safe_join

log = logging.getLogger("mmgen.viewer")

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_PORT = 8765
MAX_LIMIT = 500
OVERLAY_CACHE = 64
VERIFY_CACHE = 256
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"),
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Viewer:
    """What the request handler serves: an opened output folder plus caches."""

    def __init__(self, output: Output) -> None:
        self.output = output
        self.overlays = _LRU(OVERLAY_CACHE)
        self.checks = _LRU(VERIFY_CACHE)

    # ---------------------------------------------------------------------------- data
    def summary(self) -> dict[str, Any]:
        from scene_graphs.draw import LAYERS

        out = self.output
        return {"root": str(out.root), "graphs": str(out.graphs_dir), "images": len(out),
                "image_root": str(out.image_root) if out.image_root else None,
                "records": out.count(), "programs": out.programs, "answer_types": out.answer_types,
                "sources": [s.name for s in out.qa_sources], "curated": out.curated,
                "statuses": list(STATUSES) if out.curated else [], "drop_reasons": out.drop_reasons,
                "layers": list(LAYERS)}

    @staticmethod
    def _filters(q: dict[str, str]) -> dict[str, Any]:
        status = q.get("status") or None
        if status is not None and status not in STATUSES:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"unknown status {status!r}")
        return {"program": q.get("program") or None, "answer_type": q.get("answer_type") or None,
                "status": status}

    def images(self, q: dict[str, str]) -> dict[str, Any]:
        offset = _int(q, "offset", 0, 0, None)
        limit = _int(q, "limit", 60, 1, MAX_LIMIT)
        filters = {"label": q.get("label") or None, **self._filters(q)}
        page = self.output.images(offset=offset, limit=limit, **filters)
        return {"total": self.output.count_images(**filters), "offset": offset, "limit": limit,
                "images": [{"id": r.image_id, "path": r.path, "objects": r.objects, "relations": r.relations,
                            "text": r.text, "qa": r.qa, "labels": list(r.labels)} for r in page]}

    def _image_id(self, q: dict[str, str]) -> str:
        image_id = q.get("id", "")
        if image_id not in self.output:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no image with id {image_id!r}")
        return image_id

    def image(self, q: dict[str, str]) -> dict[str, Any]:
        from scene_graphs.draw import object_color

        image_id = self._image_id(q)
        graph = self.output.graph(image_id)
        data = graph.to_dict()
        for i, (obj, o) in enumerate(zip(data["objects"], graph.objects)):
            if "mask" in obj:
                obj["mask"] = {"area": o.mask.area if o.mask is not None else 0}
            obj["color"] = "#{:02x}{:02x}{:02x}".format(*object_color(i))
        records = list(self.output.records(image_id, **self._filters(q)))
        return {"info": self.output.info(image_id).__dict__, "graph": data,
                "has_image": self.output.image_path(image_id) is not None,
                "total_records": self.output.count(image_id), "records": records}

    def verify(self, q: dict[str, str]) -> dict[str, Any]:
        from ..inspect import verify_image

        image_id = self._image_id(q)
        checks = self.checks.get_or_make(image_id, lambda: verify_image(self.output, image_id))
        return {rid: {"ok": c.ok, "message": c.message} for rid, c in checks.items()}

    def overlay(self, q: dict[str, str]) -> bytes:
        from scene_graphs.draw import LAYERS

        image_id = self._image_id(q)
        layers = tuple(x for x in (q.get("layers") if "layers" in q else ",".join(LAYERS)).split(",") if x)
        unknown = [x for x in layers if x not in LAYERS]
        if unknown:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"unknown layer(s) {', '.join(unknown)}")
        max_side = _int(q, "max_side", 1024, 16, 4096)
        min_side = min(max_side, _int(q, "min_side", 0, 0, 4096))

        def make() -> bytes:
            img = self.output.draw(image_id, show=layers, max_side=max_side, min_side=min_side or None)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            return buf.getvalue()

        return self.overlays.get_or_make((image_id, tuple(sorted(layers)), max_side, min_side), make)

    def image_file(self, q: dict[str, str]) -> Path:
        path = self.output.image_path(self._image_id(q))
        if path is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "image file not found below the image root")
        return path

    def file(self, area: str, relative: str) -> Path:
        roots = {"out": self.output.root, "images": self.output.image_root}
        root = roots.get(area)
        path = safe_join(root, relative) if root is not None else None
        if path is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
        return path


def _int(q: dict[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer") from None
    if value < lo or (hi is not None and value > hi):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"{name} must be in [{lo}, {hi if hi is not None else '∞'}]")
    return value


class Handler(BaseHTTPRequestHandler):
    """Routes GET and HEAD requests to a :class:`Viewer` (``server.viewer``)."""

    server_version = "mmgen-viewer"
    protocol_version = "HTTP/1.1"

    @property
    def viewer(self) -> Viewer:
        return self.server.viewer  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def do_GET(self) -> None:
        self._handle(head=False)

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only viewer: GET and HEAD only\n", "text/plain",
                   head=False, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _handle(self, head: bool) -> None:
        try:
            self._check_host()
            parts = urlsplit(self.path)
            path = unquote(parts.path, errors="strict")
            q = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            self._route(path, q, head)
        except HTTPError as exc:
            self._send_json({"error": exc.message}, exc.status, head)
        except UnicodeDecodeError:
            self._send_json({"error": "bad encoding in the path"}, HTTPStatus.BAD_REQUEST, head)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # one bad graph must not stop the server
            log.exception("error serving %s", self.path)
            self._send_json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR, head)

    def _check_host(self) -> None:
        allowed = self.server.allowed_hosts  # type: ignore[attr-defined]
        if allowed is None:
            return
        if _host_name(self.headers.get("Host", "")) not in allowed:
            raise HTTPError(HTTPStatus.FORBIDDEN, "unexpected Host header (this viewer only answers to localhost)")

    def _route(self, path: str, q: dict[str, str], head: bool) -> None:
        v = self.viewer
        if path in ("/", "/index.html"):
            self._send_file(STATIC_DIR / "index.html", head)
        elif path.startswith("/static/"):
            target = safe_join(STATIC_DIR, path[len("/static/"):])
            if target is None:
                raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
            self._send_file(target, head)
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon", head=True)
        elif path == "/api/summary":
            self._send_json(v.summary(), HTTPStatus.OK, head)
        elif path == "/api/images":
            self._send_json(v.images(q), HTTPStatus.OK, head)
        elif path == "/api/image":
            self._send_json(v.image(q), HTTPStatus.OK, head)
        elif path == "/api/verify":
            self._send_json(v.verify(q), HTTPStatus.OK, head)
        elif path == "/overlay":
            self._send(HTTPStatus.OK, v.overlay(q), "image/png", head)
        elif path == "/image":
            self._send_file(v.image_file(q), head)
        elif path.startswith("/files/"):
            area, _, relative = path[len("/files/"):].partition("/")
            self._send_file(v.file(area, relative), head)
        else:
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")

    # ---------------------------------------------------------------------------- responses
    def _send(self, status: HTTPStatus, body: bytes, content_type: str, head: bool,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, val in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, val)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_json(self, data: Any, status: HTTPStatus, head: bool) -> None:
        self._send(status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), "application/json", head)

    def _send_file(self, path: Path, head: bool) -> None:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type in ("application/javascript", "application/json"):
            content_type += "; charset=utf-8"
        self._send(HTTPStatus.OK, path.read_bytes(), content_type, head)


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, viewer: Viewer, host: str, port: int) -> None:
        self.viewer = viewer
        self.allowed_hosts: set[str] | None = {*LOOPBACK_NAMES, host} if _is_loopback(host) else None
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        return f"http://{shown}:{port}/"


def make_server(output: Output, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> ViewerServer:
    """A server over ``output`` (not started: call ``serve_forever``); port 0 picks a free one."""
    if not _is_loopback(host):
        log.warning("serving on %s: anyone who can reach this address can read the output folder and images",
                    host)
    return ViewerServer(Viewer(output), host, port)
