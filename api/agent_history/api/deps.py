"""Every dependency of the API's routes, each named for what a route receives.

``EngineDep``, ``CursorsDep``, ``FeedDep``, ``VerifierDep``, ``EraserDep`` and ``LoginCodesDep``
hand over the parts ``create_app`` was given or built;
``CurrentCaller`` is who is asking, from their bearer token. This is the one module that reads
``request.app.state``. Every dependency is async: FastAPI runs a plain function in its thread
pool, a hand-off per request for nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.auth import ALL_SCOPE, Caller, TokenVerifier, missing_token
from agent_history.api.changes import ChangeFeed
from agent_history.api.cursor import CursorCodec
from agent_history.api.login import LoginCodes
from agent_history.api.ports import Eraser
from agent_history.api.settings import ApiSettings

# auto_error off: a request without a token gets this API's own 401 problem and challenge.
bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearer",
    description=f"A JWT whose `sub` is your user id; scope `{ALL_SCOPE}` reads every user's.",
)


async def get_engine(request: Request) -> AsyncEngine:
    """The engine that create_app's lifespan built for this app."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_feed(request: Request) -> ChangeFeed:
    """The process's change feed (api.changes), started with the app."""
    feed: ChangeFeed = request.app.state.feed
    return feed


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_cursors(request: Request) -> CursorCodec:
    cursors: CursorCodec = request.app.state.cursors
    return cursors


async def get_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def get_eraser(request: Request) -> Eraser | None:
    """The erase the composition root handed to create_app, if any."""
    eraser: Eraser | None = request.app.state.eraser
    return eraser


async def get_login_codes(request: Request) -> LoginCodes:
    codes: LoginCodes = request.app.state.login_codes
    return codes


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
CursorsDep = Annotated[CursorCodec, Depends(get_cursors)]
FeedDep = Annotated[ChangeFeed, Depends(get_feed)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]
EraserDep = Annotated[Eraser | None, Depends(get_eraser)]
LoginCodesDep = Annotated[LoginCodes, Depends(get_login_codes)]
TokenDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def get_current_caller(verifier: VerifierDep, token: TokenDep) -> Caller:
    """The caller of a request: a 401 problem without a valid bearer token."""
    if token is None:
        raise missing_token()
    return verifier.verify(token.credentials)


CurrentCaller = Annotated[Caller, Depends(get_current_caller)]
