"""The pages of the REST API: ``/docs`` (Swagger UI), ``/redoc`` (ReDoc) and ``/ui`` (the status
page), with every file they load served from the installed packages — never from the internet.

Swagger UI and ReDoc come from the PyPI package ``fastapi-offline`` (its ``static/`` folder:
``swagger-ui-bundle.js``, ``swagger-ui.css``, ``redoc.standalone.js``, ``favicon.png``), mounted
at ``/static/docs``; the status page's chart library (uPlot, vendored with its licence in
``redpss/rest/static/uplot``) at ``/static``. Swagger UI's online validator is switched off and
ReDoc's Google fonts are left out: a RED server without internet access shows the same pages.
ReDoc's bundle names one outside file, the small logo of its sidebar: it is served with that
address pointing at the local favicon instead (:data:`REDOC_LOGO`). Each page also carries a
Content-Security-Policy that lets the browser load nothing from any other origin:
``tests/integration/test_rest_ui.py`` opens the pages in a network namespace with nothing but
loopback and checks every request the browser makes.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from redpss.rest import ui
from redpss.rest.api import ApiDep

__all__ = ["CSP", "DOCS_ASSETS", "OWN_ASSETS", "add_pages"]

DOCS_ASSETS = Path(str(resources.files("fastapi_offline") / "static"))
OWN_ASSETS = Path(__file__).resolve().parent / "static"
# FastAPI's Swagger page starts Swagger UI from an inline script; ReDoc runs a worker from a
# blob: URL and draws images from data: URLs
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one outside address in ReDoc's bundle that a page would load (its sidebar's logo)."""


@cache
def _redoc_bundle() -> bytes:
    return (
        (DOCS_ASSETS / "redoc.standalone.js")
        .read_bytes()
        .replace(REDOC_LOGO, b"/static/docs/favicon.png")
    )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def add_pages(app: FastAPI) -> None:
    """``/docs``, ``/redoc``, ``/ui`` and the static files they load (no token: they hold no
    data; their scripts read the API with the token the operator gives)."""
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=OWN_ASSETS), name="assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=f"{title} - Swagger UI",
                swagger_js_url="/static/docs/swagger-ui-bundle.js",
                swagger_css_url="/static/docs/swagger-ui.css",
                swagger_favicon_url="/static/docs/favicon.png",
                swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
            )
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url="/openapi.json",
                title=f"{title} - ReDoc",
                redoc_js_url="/assets/redoc.standalone.js",
                redoc_favicon_url="/static/docs/favicon.png",
                with_google_fonts=False,
            )
        )

    @app.get("/assets/redoc.standalone.js", include_in_schema=False)
    def redoc_bundle() -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript")

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def status_page(api: ApiDep) -> HTMLResponse:
        """The status page; it reads the API with the token the operator gives it."""
        return _local_only(HTMLResponse(ui.page(api.inst.name)))
