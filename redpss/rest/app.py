"""The ASGI app of the REST API: what gunicorn loads (``redpss.rest.app:create_app()``).

The routes live by kind — :mod:`~redpss.rest.routes` (read, any token),
:mod:`~redpss.rest.actions` (operator tokens, audited), :mod:`~redpss.rest.pages` (``/docs``,
``/redoc``, ``/ui`` and their local assets) — and share :mod:`~redpss.rest.api` (instance, token
checks, audit, access log). Every route calls :mod:`redpss.control` or
:mod:`redpss.sched.control`, the functions ``redctl`` calls; every redpss error a route raises
is answered by the one table of :mod:`redpss.rest.errors`. The instance comes from
``$REDENV``/``$REDHOME``.
"""

from __future__ import annotations

from fastapi import FastAPI

from redpss import __version__
from redpss.instance import Instance, resolve_instance
from redpss.rest import errors
from redpss.rest.actions import add_action_routes
from redpss.rest.api import Api, log_access
from redpss.rest.pages import add_pages
from redpss.rest.routes import add_read_routes

__all__ = ["create_app"]


def create_app(inst: Instance | None = None) -> FastAPI:
    """The app for ``inst`` (default: the instance of ``$REDENV``/``$REDHOME``)."""
    inst = inst if inst is not None else resolve_instance(None).require()
    app = FastAPI(
        title=f"redpss REST API ({inst.name})",
        version=__version__,
        description="Status and control of one RED-PSS instance; see docs/rest.md.",
        docs_url=None,  # pages.py serves /docs and /redoc from local files
        redoc_url=None,
    )
    api = Api(inst, inst.load_config())
    app.state.api = api
    app.middleware("http")(log_access)
    errors.install(app)
    add_read_routes(app)
    add_action_routes(app)
    add_pages(app)
    return app
