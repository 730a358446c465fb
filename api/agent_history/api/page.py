"""The web page, served by the API itself: ``/ui/`` and its assets, and the login-link exchange.

The page is static files (ES modules, one stylesheet, no build step and nothing fetched from
elsewhere) that read the history through the same public API as any client, with the caller's
bearer token in the Authorization header. Every path under /ui/ that is not an asset answers
the page itself, whose script routes by path: links to an agent or a run can be shared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from agent_history.api.deps import LoginCodesDep
from agent_history.api.login import LoginRefused, LoginRequest, LoginToken, LoginUnavailable
from agent_history.api.problems import ProblemError
from agent_history.api.schemas import Problem

WEB = Path(__file__).with_name("web")
INVALID_LOGIN_CODE = "urn:agent-history:problem:invalid-login-code"
# Scripts, styles and requests only from this origin; the page is never framed and sends no
# Referer, so nothing in its URLs leaks to another site.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_PROBLEM: dict[str, Any] = {"model": Problem}

page = APIRouter(include_in_schema=False)
login = APIRouter(prefix="/api/v1/agent-studio", tags=["login"])


@page.get("/ui")
async def page_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@page.get("/ui/{path:path}")
async def the_page(path: str) -> FileResponse:
    """The page for any path under /ui/ (the script shows what the path names)."""
    return FileResponse(WEB / "index.html", headers=HEADERS)


@login.post(
    "/login",
    summary="Trade a login link's one-time code for a bearer token",
    responses={
        400: {**_PROBLEM, "description": "The code has expired, was used, or is not a code."},
        422: {**_PROBLEM, "description": "No code in the body."},
        501: {**_PROBLEM, "description": "This deployment takes RS256 tokens from its issuer."},
    },
)
async def redeem_login_code(codes: LoginCodesDep, body: LoginRequest) -> LoginToken:
    """The code of a link printed by `agent-history token --login-url`, once, within minutes."""
    try:
        return await codes.redeem(body.code)
    except LoginRefused as error:
        raise ProblemError(
            400, str(error), kind=INVALID_LOGIN_CODE, title="Invalid login code"
        ) from None
    except LoginUnavailable as error:
        raise ProblemError(501, str(error)) from None


def install_page(app: FastAPI) -> None:
    """The page's assets under /ui/assets/ (with ETags, so a reload revalidates cheaply), the
    page under /ui/, and the login exchange."""
    app.mount("/ui/assets", StaticFiles(directory=WEB, html=False), name="ui-assets")
    app.include_router(login)
    app.include_router(page)
