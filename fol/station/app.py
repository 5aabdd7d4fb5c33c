"""The station's web app (Starlette + Jinja2; served by uvicorn from ``fol station``).

Pages: ``/`` acquire (instrument, settings, case fields, Measure), ``/job/ID`` progress,
``/m/ID`` a result (verdict, components, quality advice, plot), ``/m/ID/report.html`` and
``.pdf``, ``/history`` search, ``/regression`` re-analysis with the current library,
``/bundle?case=N`` the case bundle (zip). Everything (style, script) is served from
``fol/station/static``: no network access is needed or made. No uploads are accepted;
POST bodies over ``MAX_BODY`` bytes are refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from fol.errors import FolError
from fol.station.security import AUTH_COOKIE, CSRF_COOKIE, Guard
from fol.station.service import ADVICE, LABELS, REMEASURE, suggested_settings

HERE = Path(__file__).parent
MAX_BODY = 64 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

VERDICT_TEXT = {"identified": "Identified", "mixture": "Mixture", "no-match": "No match in the library",
                "inconclusive": "Inconclusive"}


def banner(result: dict) -> dict:
    """(level, headline, detail) of the verdict banner: alarm / caution / clear / inconclusive.

    A saturated spectrum is refused as a result whatever the analysis found (clipped bands
    distort every score): the banner asks for a re-measurement; an alarm class the analysis
    indicated is still named, so that the sample is handled as dangerous meanwhile.
    """
    if "saturated" in (result.get("quality") or {}).get("flags", []):
        indicated = sorted(set(result.get("alarm_classes") or []) | set(result.get("possible_alarm_classes") or []))
        detail = "the detector saturated: this spectrum is not a result; lower the laser power or integration time"
        if indicated:
            detail += f". It indicates {', '.join(indicated)}: handle the sample as dangerous until re-measured"
        return {"level": "caution", "headline": "RE-MEASURE", "detail": detail}
    if result.get("alarm"):
        names = [c["name"] for c in result.get("components", []) if c.get("alarm")]
        return {"level": "alarm", "headline": "ALARM",
                "detail": f"{', '.join(result.get('alarm_classes', []))}: {', '.join(names)}"}
    possible = result.get("possible_alarm_classes")
    if possible:
        return {"level": "caution", "headline": "CAUTION",
                "detail": f"cannot rule out {', '.join(possible)}: confirm in the laboratory"}
    if result.get("verdict") in ("identified", "mixture"):
        return {"level": "clear", "headline": "No controlled substance found",
                "detail": ", ".join(c["name"] for c in result.get("components", []))}
    if result.get("verdict") == "no-match":
        return {"level": "caution", "headline": "CAUTION",
                "detail": "nothing in the library explains this spectrum: an unknown substance; do not treat as clear"}
    return {"level": "caution", "headline": "INCONCLUSIVE",
            "detail": result.get("error") or "the result cannot be trusted: see the quality notes and measure again"}


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "–" if v is None else f"{float(v):.0%}"
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{float(v):.{d}f}"
    env.filters["short"] = lambda v, n=12: str(v or "")[:n]
    env.globals.update(LABELS=LABELS, VERDICT_TEXT=VERDICT_TEXT)
    return env


class Headers(BaseHTTPMiddleware):
    """Security headers, body-size limit, access token, and the CSRF cookie."""

    def __init__(self, app, guard: Guard):
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next):
        if request.method == "POST" and int(request.headers.get("content-length") or 0) > MAX_BODY:
            return PlainTextResponse("request too large", status_code=413)
        path = request.url.path
        if not self.guard.authorised(request) and path not in ("/login",) and not path.startswith("/static/"):
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                return RedirectResponse("/login", status_code=303)
            return PlainTextResponse("access token required", status_code=401)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        new = getattr(request.state, "new_csrf", None)
        if new:
            response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response


def create_app(station, *, token: str | None = None) -> Starlette:
    env = make_env()
    guard = Guard(token)

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        ctx.update(request=request, csrf=guard.csrf_token(request), station=station, nav=name.split(".")[0])
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status)

    def error(request: Request, message: str, status: int = 400) -> HTMLResponse:
        return page(request, "error.html", status=status, message=message)

    async def form_of(request: Request):
        form = await request.form()
        if not guard.csrf_ok(request, form):
            return None
        return {k: str(v) for k, v in form.items()}

    def measurement(request: Request) -> dict | None:
        try:
            mid = int(request.path_params["mid"])
        except (KeyError, ValueError):
            return None
        return station.store.get(mid)

    # -- pages

    async def acquire(request: Request):
        prefill = {k: request.query_params.get(k, "") for k in (*LABELS,)}
        settings = {k: prefill[k] or station.defaults[k] for k in ("integration_ms", "averages", "laser_mw")}
        remeasure_of = request.query_params.get("remeasure", "")
        return page(request, "acquire.html", case=prefill, settings=settings, defaults=station.defaults,
                    required=station.config.required, remeasure_of=remeasure_of)

    async def refresh(request: Request):
        if await form_of(request) is None:
            return error(request, "the form expired or came from elsewhere (CSRF check failed): reload the page", 403)
        await run_in_threadpool(station.refresh_instrument)
        return RedirectResponse("/", status_code=303)

    async def measure(request: Request):
        form = await form_of(request)
        wants_json = "application/json" in request.headers.get("accept", "")
        if form is None:
            msg = "the form expired or came from elsewhere (CSRF check failed): reload the page"
            return JSONResponse({"error": msg}, 403) if wants_json else error(request, msg, 403)
        try:
            job = station.start_measurement(form, form)
        except FolError as e:
            if wants_json:
                return JSONResponse({"error": str(e)}, 400)
            case = {k: form.get(k, "") for k in ("case_no", "item_no", "operator", "description", "notes")}
            return page(request, "acquire.html", status=400, case=case, message=str(e),
                        settings={k: form.get(k) or station.defaults[k] for k in ("integration_ms", "averages", "laser_mw")},
                        defaults=station.defaults, required=station.config.required, remeasure_of="")
        if wants_json:
            return JSONResponse({"job": job.id, "url": f"/job/{job.id}"})
        return RedirectResponse(f"/job/{job.id}", status_code=303)

    async def job_page(request: Request):
        job = station.job(request.path_params["jid"])
        if job is None:
            return error(request, "no such measurement job (the station may have restarted)", 404)
        if job.phase == "done":
            return RedirectResponse(f"/m/{job.measurement_id}", status_code=303)
        return page(request, "job.html", job=job.public(), case=job.case, settings=job.settings)

    async def job_api(request: Request):
        job = station.job(request.path_params["jid"])
        if job is None:
            return JSONResponse({"error": "no such job"}, 404)
        return JSONResponse(job.public())

    async def result_page(request: Request):
        m = measurement(request)
        if m is None:
            return error(request, "no such measurement", 404)
        r = m["result"]
        flags = r.get("quality", {}).get("flags", [])
        advice = [(f, ADVICE[f]) for f in flags if f in ADVICE]
        remeasure = None
        if any(f in REMEASURE for f in flags):
            remeasure = suggested_settings(flags, m["settings"])
        return page(request, "result.html", m=m, r=r, banner=banner(r), advice=advice, remeasure=remeasure,
                    chain=station.store.history(m["id"]))

    async def plot_svg(request: Request):
        m = measurement(request)
        if m is None:
            return PlainTextResponse("no such measurement", 404)
        svg = await run_in_threadpool(station.plot, m, "svg")
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})

    async def report_html(request: Request):
        from fol.station.report import report_html as render

        m = measurement(request)
        if m is None:
            return error(request, "no such measurement", 404)
        html = await run_in_threadpool(render, station, m, env)
        return HTMLResponse(html)

    async def report_pdf(request: Request):
        from fol.station.report import report_pdf as render

        m = measurement(request)
        if m is None:
            return error(request, "no such measurement", 404)
        pdf = await run_in_threadpool(render, station, m)
        name = f"report-{m['case_no']}-{m['item_no']}-{m['id']}.pdf".replace("/", "_")
        return Response(pdf, media_type="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{_ascii(name)}"'})

    async def correct(request: Request):
        form = await form_of(request)
        m = measurement(request)
        if form is None:
            return error(request, "CSRF check failed: reload the page", 403)
        if m is None:
            return error(request, "no such measurement", 404)
        changes = {k: form.get(k, m[k]) for k in ("case_no", "item_no", "operator", "description", "notes")}
        try:
            new = station.store.correct(m["id"], station.check_case(changes), reason=form.get("reason", ""),
                                        actor=form.get("actor") or changes["operator"])
        except FolError as e:
            return error(request, str(e))
        return RedirectResponse(f"/m/{new}", status_code=303)

    async def history(request: Request):
        q = {k: request.query_params.get(k, "") for k in ("case", "item", "from", "to", "substance", "alarm")}
        alarm = {"yes": True, "no": False}.get(q["alarm"])
        t0 = time.perf_counter()
        try:
            rows = station.store.search(case_no=q["case"], item_no=q["item"], date_from=q["from"], date_to=q["to"],
                                        substance=q["substance"], alarm=alarm, limit=200)
        except FolError as e:
            return error(request, str(e))
        ms = (time.perf_counter() - t0) * 1000
        return page(request, "history.html", q=q, rows=rows, search_ms=ms, total=station.store.count())

    async def regression(request: Request):
        rows = None
        if request.method == "POST":
            if await form_of(request) is None:
                return error(request, "CSRF check failed: reload the page", 403)
            rows = await run_in_threadpool(station.regression)
        return page(request, "regression.html", rows=rows, library=station.library)

    async def bundle(request: Request):
        from fol.station.bundle import case_bundle

        case_no = request.query_params.get("case", "").strip()
        if not case_no:
            return error(request, "which case? (bundle?case=NUMBER)")
        try:
            data = await run_in_threadpool(case_bundle, station.store, case_no, station=station, env=env,
                                           actor="station")
        except FolError as e:
            return error(request, str(e), 404)
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="case-{_ascii(case_no)}.zip"'})

    async def login(request: Request):
        if request.method == "POST":
            form = await form_of(request)
            if form is None:
                return error(request, "CSRF check failed: reload the page", 403)
            if guard.check_token(form.get("token", "")):
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie(AUTH_COOKIE, guard.auth_value(), httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
                station.store.audit("station", "login", {"client": request.client.host if request.client else ""})
                return resp
            return page(request, "login.html", status=403, message="wrong access token")
        return page(request, "login.html", message="")

    routes = [
        Route("/", acquire), Route("/instrument/refresh", refresh, methods=["POST"]),
        Route("/measure", measure, methods=["POST"]), Route("/job/{jid}", job_page), Route("/api/job/{jid}", job_api),
        Route("/m/{mid:int}", result_page), Route("/m/{mid:int}/plot.svg", plot_svg),
        Route("/m/{mid:int}/report.html", report_html), Route("/m/{mid:int}/report.pdf", report_pdf),
        Route("/m/{mid:int}/correct", correct, methods=["POST"]), Route("/history", history),
        Route("/regression", regression, methods=["GET", "POST"]), Route("/bundle", bundle),
        Route("/login", login, methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    async def store_error(request: Request, exc: Exception):
        # a row edited outside fol, a damaged or locked database: one line on an error page, not a server error
        return error(request, str(exc), 500)

    from fol.cases.store import StoreError

    app = Starlette(routes=routes, middleware=[Middleware(Headers, guard=guard)],
                    exception_handlers={StoreError: store_error})
    app.state.station = station
    return app


def _ascii(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))[:80]


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)
