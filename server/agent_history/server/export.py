"""`agent-history export`: a list's export written to a file, by the API's own export code.

In process, on the database, with the API's settings: an operator's command like prune and
erase, which sees every user's executions (no token), and needs no API running. The filters
are validated by the export endpoint's own parameter models, and the rows come from the same
code (api.exports.export_chunks), so the file equals the endpoint's download.
"""

from __future__ import annotations

from typing import BinaryIO
from uuid import UUID

from agent_history.api.engine import make_reader_engine
from agent_history.api.exports import export_chunks
from agent_history.api.paging import list_filter
from agent_history.api.parameters import AgentExportQuery, UserExportQuery
from agent_history.api.settings import ApiSettings


def export_query(
    agent_id: UUID | None, user_id: UUID | None, query: dict[str, object]
) -> AgentExportQuery | UserExportQuery:
    """The endpoint's parameters (ValidationError as the endpoint's 422 would say)."""
    if agent_id is not None:
        return AgentExportQuery.model_validate(query)
    return UserExportQuery.model_validate(query)


async def export_to(
    settings: ApiSettings,
    agent_id: UUID | None,
    user_id: UUID | None,
    params: AgentExportQuery | UserExportQuery,
    out: BinaryIO,
) -> None:
    """Write the export of an agent's (or a user's) list with these parameters to ``out``."""
    if isinstance(params, AgentExportQuery):
        where = list_filter(params, agent_id=agent_id, user_id=params.user_id)
    else:
        where = list_filter(params, agent_id=params.agent_id, user_id=user_id)
    engine = make_reader_engine(settings)
    try:
        async for chunk in export_chunks(
            engine, where, params.format, params.order, params.included
        ):
            out.write(chunk)
    finally:
        await engine.dispose()
