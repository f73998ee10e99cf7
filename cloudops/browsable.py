"""DRF's browsable API for people in a browser; JSON, exactly as before, for every API client.

Who gets HTML: a request whose Accept header *prefers* text/html to application/json, by
q-value and then by order (Django's HttpRequest.get_preferred_type): what browsers send on a
page load. A request with no Accept, `*/*` (curl, requests, httpx), `application/json`, or
any header that ranks JSON at least as high, gets JSON. An explicit `?format=json` or
`?format=api` (the links of the page's format menu) wins over the Accept header, as in DRF.

The pages and their forms come from DRF's BrowsableAPIRenderer, with DRF's own static files
served by our static setup (cloudops/static.py; no CDN). The log-in link goes to the admin
login, which brings the person back to the page (templates/rest_framework/api.html); DRF's
own login views are not routed (cloudops/ratelimit/rules.py: every password form is limited).
"""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer
from rest_framework.request import Request

HTML = "text/html"
JSON = "application/json"


def prefers_html(request: Request) -> bool:
    return request._request.get_preferred_type([JSON, HTML]) == HTML


class BrowserContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with the browsable renderer reserved for browsers (see the module)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        if format_suffix or request.query_params.get(self.settings.URL_FORMAT_OVERRIDE):
            return super().select_renderer(request, renderers, format_suffix)
        browsable = [r for r in renderers if isinstance(r, BrowsableAPIRenderer)]
        if browsable and prefers_html(request):
            return browsable[0], browsable[0].media_type
        others = [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)]
        return super().select_renderer(request, others or renderers, format_suffix)
