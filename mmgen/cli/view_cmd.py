"""``mmgen view``: a local, read-only web viewer over an output folder."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("mmgen.viewer")


@click.command("view")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the folder and images.")
@click.option("--image-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder the graph paths are relative to (default: read from the output folder).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
def command(out_dir: Path, port: int, host: str, image_root: Path | None, open_browser: bool) -> None:
    """Serve a page to browse OUT_DIR: images with counts, overlays, scene graphs and QA records.

    Filters by program, answer type and curation status, search by object label; each record shows
    its rationale and is verified against its graph on demand. Read-only; stop with Ctrl-C.

    \b
    Example:
      mmgen view out/ --port 8765
    """
    from ..store import open_output
    from ..viewer.server import make_server

    output = open_output(out_dir, image_root)
    if output.image_root is None:
        log.warning("no image root known for %s: overlays are drawn on a plain canvas (use --image-root)", out_dir)
    server = make_server(output, host, port)
    click.echo(f"mmgen viewer on {server.url}  ({len(output)} images, {output.count()} QA records); Ctrl-C stops")
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        output.close()
