"""The dashboard's web server (Tornado): the page, its scripts from installed packages, a JSON API on the
record, and the token-guarded actions. Storage queries run on a small thread pool, off the event loop."""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import ipaddress
import json
import logging
import secrets
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from hpoqueue.dashboard import charts, trial_table, views
from hpoqueue.dashboard.actions import ActionError, Actions
from hpoqueue.dashboard.snapshot import Snapshot
from hpoqueue.errors import HpoQueueError, NotFoundError
from hpoqueue.storage import Storage

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DEFAULT_FLOWER = "http://127.0.0.1:5555"
TOKEN_HEADER = "X-Hpoqueue-Token"


#: plotly.js with only the trace types the pages draw (tools/build_plotly.sh): 1.3 MB, not the full 4.8 MB,
#: so a fresh browser parses and compiles it in a sixth of the time; shipped in hpoqueue's package (no CDN)
PLOTLY_JS = STATIC / "plotly-hpoqueue.min.js"
#: where pages load it from, when they first draw a chart: the content's hash in the URL lets the browser keep
#: it (and its compiled code) for good, and ask again only for a changed file
PLOTLY_URL = f"/static/{PLOTLY_JS.name}?v={hashlib.sha256(PLOTLY_JS.read_bytes()).hexdigest()[:16]}"
WARM = 8  #: experiments read as the dashboard starts, when none is named: the newest
#: experiments whose snapshot (their trials in memory: about 10 MB at 10,000 trials) is kept: the least recently
#: used one is dropped past this (read in full again if its charts are asked for again)
SNAPSHOTS = 12


class Dashboard:
    """What the handlers share: storage, actions, each experiment's snapshot (kept up to date incrementally)
    and a cache of the chart data keyed by version."""

    def __init__(self, storage: Storage, actions: Actions, flower: str | None) -> None:
        self.storage = storage
        self.actions = actions
        self.flower = flower
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard")
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        #: per experiment: the trials as the charts last read them, the least recently used first
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._snapshots_lock = threading.Lock()
        self._flower_seen: tuple[float, bool] = (0.0, False)

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def cached(self, key: tuple[Any, ...], exp_id: str, func: Callable[..., Any], *args: Any) -> bytes:
        """func(*args) as JSON, computed again only when the experiment's version changed."""
        full = (*key, await self.run(views.version, self.storage, exp_id))
        if full not in self._cache:
            self._cache[full] = await self.run(lambda: encode(func(*args)))
            while len(self._cache) > 32:
                self._cache.popitem(last=False)
        return self._cache[full]

    def chart(self, exp_id: str, kind: str, chosen: list[str]) -> Any:
        """One chart's data, from the experiment's snapshot brought up to date first (off the event loop)."""
        snapshot = self.snapshot(exp_id)
        with snapshot.lock:
            snapshot.refresh()
            return CHARTS[kind](snapshot, chosen) if kind == "curves" else CHARTS[kind](snapshot)

    def snapshot(self, exp_id: str) -> Snapshot:
        """The experiment's snapshot: kept for the SNAPSHOTS experiments used last (a dropped one may still be in
        use by a request: it is read and dropped with it)."""
        with self._snapshots_lock:
            if exp_id in self._snapshots:
                self._snapshots.move_to_end(exp_id)
                return self._snapshots[exp_id]
            snapshot = self._snapshots[exp_id] = Snapshot(self.storage, exp_id)
            while len(self._snapshots) > SNAPSHOTS:
                self._snapshots.popitem(last=False)
            return snapshot

    def warm(self, exp_id: str | None) -> None:
        """Read the experiment's snapshot now (a second for 10,000 trials), not when its first chart is asked for;
        with None, the WARM newest experiments', one after the other (the list is open: any may be chosen next)."""
        for exp in [exp_id] if exp_id is not None else [e.id for e in self.storage.list_experiments()[:WARM]]:
            snapshot = self.snapshot(exp)
            with snapshot.lock:
                if snapshot.exp is None:  # not read by a chart meanwhile
                    snapshot.refresh()
            log.info("read experiment %s for its charts", exp)

    def flower_url(self) -> str | None:
        """The Flower to link to when it answers (asked at most every 10 s)."""
        if self.flower is None:
            return None
        checked, up = self._flower_seen
        if time.monotonic() - checked > 10:
            try:
                with urllib.request.urlopen(f"{self.flower.rstrip('/')}/healthcheck", timeout=0.5) as resp:
                    up = resp.status == 200
            except OSError:
                up = False
            self._flower_seen = (time.monotonic(), up)
        return self.flower if up else None


class Handler(tornado.web.RequestHandler):
    """JSON in and out; the library's errors become one-line JSON errors with a fitting status."""

    def initialize(self, dash: Dashboard) -> None:
        self.dash = dash

    def prepare(self) -> None:
        # DNS rebinding: a page on another site that resolves its own name to 127.0.0.1 must not read us
        allowed = self.settings.get("allowed_hosts")
        if allowed is not None and self.request.host_name not in allowed:
            raise tornado.web.HTTPError(403, reason="unknown Host header")

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        message = str(exc) if isinstance(exc, HpoQueueError | ActionError) else self._reason
        self.finish({"error": message})

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, NotFoundError):
            self.send_error(404, exc_info=(type(e), e, None))
        elif isinstance(e, ActionError):
            self.send_error(e.status, exc_info=(type(e), e, None))
        elif isinstance(e, HpoQueueError):
            self.send_error(400, exc_info=(type(e), e, None))
        else:
            super()._handle_request_exception(e)

    def reply(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(data if isinstance(data, bytes) else encode(data))


class Info(Handler):
    async def get(self) -> None:
        flower = await self.dash.run(self.dash.flower_url)
        self.reply({"read_only": self.dash.actions.read_only, "flower": flower,
                    "default_experiment": self.settings.get("experiment"), "plotly": PLOTLY_URL})


class ExperimentList(Handler):
    async def get(self) -> None:
        self.reply(await self.dash.run(views.experiments, self.dash.storage))


class Overview(Handler):
    async def get(self, exp_id: str) -> None:
        self.reply(await self.dash.run(views.overview, self.dash.storage, exp_id))


class Version(Handler):
    async def get(self, exp_id: str) -> None:
        self.reply({"version": await self.dash.run(views.version, self.dash.storage, exp_id or None)})


class Trials(Handler):
    async def get(self, exp_id: str) -> None:
        exp = await self.dash.run(self.dash.storage.get_experiment, exp_id)
        sort, descending = self.get_argument("sort", "seq"), self.get_argument("desc", "0") == "1"
        states, filters = self.get_arguments("state"), self.get_arguments("filter")
        offset = _int(self.get_argument("offset", "0"), "offset")
        limit = min(_int(self.get_argument("limit", "50"), "limit"), trial_table.MAX_PAGE)
        self.reply(await self.dash.run(lambda: trial_table.page(
            self.dash.storage, exp, sort=sort, descending=descending, states=states, filters=filters,
            offset=offset, limit=limit)))


class Points(Handler):
    async def get(self, exp_id: str) -> None:
        self.reply(await self.dash.cached(("points", exp_id), exp_id, views.trial_points, self.dash.storage,
                                          exp_id))


class Chart(Handler):
    """The reduced data of one chart family (charts.py), cached per revision of the experiment."""

    async def get(self, exp_id: str, kind: str) -> None:
        chosen = [c for c in self.get_argument("chosen", "").split(",") if c] if kind == "curves" else []
        self.reply(await self.dash.cached((kind, exp_id, *chosen), exp_id, self.dash.chart, exp_id, kind, chosen))


CHARTS: dict[str, Callable[..., Any]] = {"progress": charts.progress, "curves": charts.curves,
                                         "params": charts.params, "timeline": charts.timeline}


class TrialPage(Handler):
    async def get(self, trial_id: str) -> None:
        self.reply(await self.dash.run(views.trial, self.dash.storage, trial_id))


class Log(Handler):
    async def get(self, trial_id: str) -> None:
        name = self.get_argument("name", "stdout")
        if name not in views.LOG_NAMES:
            raise HpoQueueError(f"unknown log {name!r}; one of: {', '.join(views.LOG_NAMES)}")
        offset = _int(self.get_argument("offset", "-1"), "offset")
        self.reply(await self.dash.run(views.log_tail, self.dash.storage, trial_id, name, offset))


class Action(Handler):
    """POST only, with the token in the X-Hpoqueue-Token header: a header no other site's page can send
    without the browser asking us first (CORS), so the token never sits in a cookie a form could ride on."""

    async def post(self, kind: str, target: str) -> None:
        actions = self.dash.actions
        actions.check(self.request.headers.get(TOKEN_HEADER))
        if kind == "kill":
            await self.dash.run(self.dash.storage.get_trial, target)
            message = await self.dash.run(actions.kill, target)
        elif kind == "stop":
            await self.dash.run(self.dash.storage.get_experiment, target)
            message = await self.dash.run(actions.stop, target)
        else:
            body = _json_body(self.request.body)
            await self.dash.run(self.dash.storage.get_experiment, target)
            message = await self.dash.run(lambda: actions.update(
                target, concurrency=_optional_int(body.get("concurrency"), "concurrency"),
                max_trials=_optional_int(body.get("max_trials"), "max_trials"),
                duration=str(body["duration"]) if body.get("duration") not in (None, "") else None))
        self.reply({"message": message})


class Page(Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((STATIC / "index.html").read_bytes())


class PlotlyBundle(tornado.web.RequestHandler):
    """The Plotly bundle, gzipped once per process (Tornado's compress_response gzips 1.3 MB on every fetch:
    about 0.1 s of a fresh browser's first chart), kept by browsers for good (its URL holds its hash)."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Vary", "Accept-Encoding")
        if "gzip" in self.request.headers.get("Accept-Encoding", ""):
            self.set_header("Content-Encoding", "gzip")  # Tornado's own gzip leaves an encoded body alone
            self.finish(_plotly_gzipped())
        else:
            self.finish(PLOTLY_JS.read_bytes())


@functools.cache
def _plotly_gzipped() -> bytes:
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=9, mtime=0)


def encode(data: Any) -> bytes:
    return json.dumps(data, allow_nan=False, default=str, separators=(",", ":")).encode()


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise HpoQueueError(f"{name} must be a whole number, not {text!r}") from None


def _optional_int(value: Any, name: str) -> int | None:
    return None if value in (None, "") else _int(str(value), name)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise HpoQueueError("the request body must be a JSON object") from None
    if not isinstance(data, dict):
        raise HpoQueueError("the request body must be a JSON object")
    return data


def make_app(dash: Dashboard, *, experiment: str | None, allowed_hosts: set[str] | None) -> tornado.web.Application:
    route = {"dash": dash}
    exp = r"([A-Za-z0-9_.-]+)"
    return tornado.web.Application([
        (r"/", Page, route),
        (r"/api/info", Info, route),
        (r"/api/experiments", ExperimentList, route),
        (r"/api/version/?([A-Za-z0-9_.-]*)", Version, route),
        (rf"/api/experiments/{exp}", Overview, route),
        (rf"/api/experiments/{exp}/trials", Trials, route),
        (rf"/api/experiments/{exp}/points", Points, route),
        (rf"/api/experiments/{exp}/(progress|curves|params|timeline)", Chart, route),
        (rf"/api/trials/{exp}", TrialPage, route),
        (rf"/api/trials/{exp}/log", Log, route),
        (rf"/api/(kill|stop|update)/{exp}", Action, route),
        (f"/static/{PLOTLY_JS.name}", PlotlyBundle),
        (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": str(STATIC)}),
    ], experiment=experiment, allowed_hosts=allowed_hosts, compress_response=True)


def _allowed_hosts(address: str) -> set[str] | None:
    """Host names a loopback-bound dashboard answers to; None (any) when it listens beyond loopback."""
    try:
        if not ipaddress.ip_address(address).is_loopback:
            return None
    except ValueError:
        if address != "localhost":
            return None
    return {"127.0.0.1", "localhost", "::1", "[::1]", address}


def serve(storage_url: str, experiment: str | None, *, address: str, port: int, read_only: bool,
          flower: str | None) -> int:
    """Serve until interrupted; prints the URL to open (with the action token unless read-only)."""
    storage = Storage(storage_url)
    if experiment is not None:
        storage.get_experiment(experiment)
    actions = Actions(storage.url, secrets.token_urlsafe(24), read_only)
    dash = Dashboard(storage, actions, flower or DEFAULT_FLOWER)
    app = make_app(dash, experiment=experiment, allowed_hosts=_allowed_hosts(address))
    dash.pool.submit(dash.warm, experiment)  # while the browser starts: the page opens on it, or on the list
    try:
        sockets = tornado.netutil.bind_sockets(port, address)
    except OSError as exc:
        raise HpoQueueError(f"cannot listen on {address}:{port}: {exc.strerror}; pick another --port") from None
    bound = sockets[0].getsockname()[1]
    host = f"[{address}]" if ":" in address else address
    query = "" if read_only else f"?token={actions.token}"
    fragment = f"#/experiment/{experiment}" if experiment else ""
    print(f"hpoqueue dashboard on http://{host}:{bound}/{query}{fragment}", flush=True)
    if read_only:
        print("read-only: kill, stop and update are off", flush=True)
    if _allowed_hosts(address) is None:
        log.warning("listening on %s, beyond this machine: anyone who reaches it can read the record "
                    "(actions still need the token)", address)

    async def run_server() -> None:
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        try:
            await asyncio.Event().wait()
        finally:
            server.stop()

    try:
        asyncio.run(run_server())
    except KeyboardInterrupt:  # Ctrl-C (or SIGTERM) is how a dashboard ends: no error
        log.info("dashboard stopped")
    finally:
        dash.pool.shutdown(wait=False, cancel_futures=True)
        storage.close()
    return 0
