# The agent-history image: `agent-history migrate | projector | api` (see compose.yaml).
FROM python:3.12-slim-bookworm

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

# Dependencies first, in their own layer: rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --extra server --no-install-project

COPY alembic.ini ./
COPY agent_history ./agent_history
COPY producer ./producer
COPY projector ./projector
COPY api ./api
COPY migrations ./migrations
RUN uv sync --frozen --no-dev --extra server

RUN useradd --system --no-create-home agent-history
USER agent-history

EXPOSE 8000
CMD ["agent-history", "--help"]
