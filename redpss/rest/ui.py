"""``/ui``: the status page an operator works from — plain HTML, CSS and JS served from the
package (``redpss/rest/static/ui.*``), no build step, nothing from the internet.

The page holds no data and needs no token; its script (``static/ui.js``) reads the JSON API
with a token the operator gives it: typed into the sign-in box, or passed as ``/ui#token=...``
(a fragment is never sent to the server; it is removed from the address bar). The token is kept
in ``sessionStorage`` (gone with the tab). A bad token gets a message saying so. With an
operator's token the page shows buttons (suspend/resume, start, (de)activate, reset watcher
errors, kill a run), each asking for a confirmation; the API audits them. It refreshes itself
every :data:`REFRESH_SECONDS` (the charts every minute; uPlot, vendored in ``static/uplot``).
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

__all__ = ["REFRESH_SECONDS", "page"]

REFRESH_SECONDS = 5
TEMPLATE = Path(__file__).resolve().parent / "static" / "ui.html"


@cache
def _template() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


def page(instance: str) -> str:
    """The HTML of the status page of ``instance``."""
    return _template() % {"instance": html.escape(instance), "refresh": REFRESH_SECONDS}
