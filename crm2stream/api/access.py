"""Who may read the API: the token check every route but the public ones makes."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request


class Access:
    """Who may read: with a token set, a request must present it, as a bearer token or as
    one ``access_token`` query parameter (a browser's EventSource cannot send headers).
    Public without it: ``/metrics``, ``/healthz`` (a bare status) and the page shell."""

    def __init__(self, token: str) -> None:
        self.token = token.encode("ascii")

    def presented(self, request: Request) -> str | None:
        """The token a request presents; a 400 when it presents several."""
        headers = request.headers.getlist("authorization")
        params = request.query_params.getlist("access_token")
        if len(headers) > 1 or len(params) > 1:
            raise HTTPException(400, "present the API token once")
        if headers:
            scheme, _, credentials = headers[0].partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else None
        return params[0] if params else None

    def granted(self, request: Request) -> bool:
        if not self.token:
            return True
        given = self.presented(request)
        return given is not None and secrets.compare_digest(given.encode(), self.token)
