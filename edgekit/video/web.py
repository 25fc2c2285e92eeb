"""``edgekit timeline serve``: a small web page over a timeline store (the standard library's http.server).

One page, rendered on the server (no script, no CDN; readable on a phone): a day of segments with their
thumbnails and captions, the day's summaries, a camera filter, and a search box over the full-text index.
Days and clock times are the serving machine's local time. Thumbnails are served from the store's
``frames/`` folder and nothing else.
"""

from __future__ import annotations

import html
import mimetypes
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from edgekit.video.store import FRAMES, Store, unix

PAGE_SIZE = 500

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#223;color:#fff;padding:.6em 1em}header a{color:#fff}
form{display:flex;flex-wrap:wrap;gap:.4em;margin:.4em 0}input,select,button{font:inherit;padding:.3em}
main{padding:0 1em 2em}h2{font-size:1.1em;margin:1.2em 0 .4em}
.seg{display:flex;gap:.6em;background:#fff;border-radius:6px;padding:.5em;margin:.4em 0;align-items:flex-start}
.seg img{width:160px;max-width:40vw;border-radius:4px}.when{font-weight:600;white-space:nowrap}
.cam{color:#667;font-size:.9em}.summary{background:#eef;padding:.5em;border-radius:6px;margin:.4em 0}
nav a{margin-right:1em}
"""


def local(wall_iso: str) -> datetime:
    return datetime.fromtimestamp(unix(wall_iso)).astimezone()


def day_bounds(day: date) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day).astimezone()
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def latest_day(store: Store) -> date:
    row = store.db.execute("SELECT max(wall) FROM segments").fetchone()
    return datetime.fromtimestamp(row[0]).date() if row[0] is not None else date.today()


def render(store: Store, query: dict[str, str]) -> str:
    """The page for ``query`` (``day`` YYYY-MM-DD, ``camera``, ``q`` search words, ``offset``)."""
    camera = query.get("camera") or None
    words = query.get("q", "").strip()
    try:
        day = date.fromisoformat(query["day"]) if query.get("day") else latest_day(store)
    except ValueError:
        day = latest_day(store)
    offset = max(0, int(query.get("offset", "0"))) if query.get("offset", "0").isdigit() else 0
    body = [_form(store, day, camera, words)]
    if words:
        found = store.search(words, camera=camera, limit=PAGE_SIZE)
        body.append(f"<h2>{len(found)} segment{'s' * (len(found) != 1)} matching “{html.escape(words)}”</h2>")
        body += [_segment(store, s, with_day=True) for s in found]
        summaries = store.search_summaries(words, camera=camera)
        if summaries:
            body.append("<h2>Summaries</h2>")
            body += [_summary(s, with_day=True) for s in summaries]
    else:
        since, until = day_bounds(day)
        body.append(_day_nav(day, camera))
        summaries = store.summaries(since, until, camera)
        if summaries:
            body.append("<h2>Summaries</h2>")
            body += [_summary(s) for s in summaries]
        segments = store.segments(since, until, camera)
        body.append(f"<h2>{len(segments)} segments on {day.isoformat()}</h2>")
        body += [_segment(store, s) for s in segments[offset:offset + PAGE_SIZE]]
        if len(segments) > offset + PAGE_SIZE:
            more = urlencode({"day": day.isoformat(), "camera": camera or "", "offset": offset + PAGE_SIZE})
            body.append(f'<p><a href="?{more}">later segments</a></p>')
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>edgekit timeline</title><style>{_STYLE}</style></head><body>"
            f'<header><a href="/"><b>edgekit timeline</b></a></header><main>{"".join(body)}</main></body></html>')


def _form(store: Store, day: date, camera: str | None, words: str) -> str:
    options = "".join(f'<option value="{html.escape(c)}"{" selected" * (c == camera)}>{html.escape(c)}</option>'
                      for c in store.cameras())
    return ('<form method=get action="/">'
            f'<select name=camera><option value="">all cameras</option>{options}</select>'
            f'<input type=date name=day value="{day.isoformat()}">'
            f'<input type=search name=q placeholder="search captions" value="{html.escape(words)}">'
            "<button>show</button></form>")


def _day_nav(day: date, camera: str | None) -> str:
    def link(d: date, text: str) -> str:
        return f'<a href="?{urlencode({"day": d.isoformat(), "camera": camera or ""})}">{text}</a>'
    return f"<nav>{link(day - timedelta(days=1), '&larr; previous day')}{link(day + timedelta(days=1), 'next day &rarr;')}</nav>"


def _segment(store: Store, s: dict[str, Any], with_day: bool = False) -> str:
    start = local(s["wall"])
    end = start + timedelta(seconds=s["end"] - s["start"])
    when = f"{start:%Y-%m-%d }" * with_day + f"{start:%H:%M:%S}–{end:%H:%M:%S}"
    images = "".join(f'<img loading=lazy alt="" src="/{quote(name)}">' for name in s["thumbnails"]
                     if (store.out / name).is_file())
    return (f'<article class=seg id="{html.escape(s["id"])}">{images}<div><div class=when>{when}</div>'
            f'<div class=cam>{html.escape(s["camera"])}</div><div class=caption>{html.escape(s["caption"])}</div>'
            "</div></article>")


def _summary(s: dict[str, Any], with_day: bool = False) -> str:
    start = local(s["wall"])
    label = "summary" if s["final"] else "summary so far"
    return (f'<div class=summary><b>{f"{start:%Y-%m-%d }" * with_day}{start:%H:%M} {label}</b> '
            f'({html.escape(s["camera"])}): {html.escape(s["text"])}</div>')


class Handler(BaseHTTPRequestHandler):
    store_folder: Path  # set by ``serve``

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        name = unquote(url.path)
        if name == "/":
            store = Store(self.store_folder)
            try:
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                self._send(200, "text/html; charset=utf-8", render(store, query).encode())
            finally:
                store.close()
        elif name.startswith(f"/{FRAMES}/") and "/" not in name[len(FRAMES) + 2:]:
            path = self.store_folder / FRAMES / name[len(FRAMES) + 2:]
            if path.is_file() and not path.name.startswith("."):
                self._send(200, mimetypes.guess_type(path.name)[0] or "application/octet-stream", path.read_bytes())
            else:
                self._send(404, "text/plain", b"not found")
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store" if kind.startswith("text/html") else "max-age=3600")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: a phone polling the page fills no journal
        pass


def server(out: Path, host: str, port: int) -> ThreadingHTTPServer:
    """The web page's server for the store in ``out`` (``serve_forever()`` it)."""
    Store(out).close()  # a folder without a store fails here, with one line
    handler = type("StoreHandler", (Handler,), {"store_folder": Path(out)})
    return ThreadingHTTPServer((host, port), handler)
