# The agent-history image: `agent-history migrate | projector | api` (see compose.yaml).
FROM python:3.12-slim-bookworm

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

# Dependencies first, in their own layer: rebuilt only when the lock file changes. The image
# holds the services (agent-history-server), not the local-services launcher.
COPY pyproject.toml uv.lock ./
COPY contract/pyproject.toml contract/
COPY producer/pyproject.toml producer/README.md producer/
COPY migrations/pyproject.toml migrations/
COPY projector/pyproject.toml projector/
COPY api/pyproject.toml api/
COPY server/pyproject.toml server/
COPY devservices/pyproject.toml devservices/
RUN uv sync --frozen --no-dev --package agent-history-server --no-install-workspace

COPY alembic.ini ./
COPY contract ./contract
COPY producer ./producer
COPY migrations ./migrations
COPY projector ./projector
COPY api ./api
COPY server ./server
RUN uv sync --frozen --no-dev --package agent-history-server --no-editable

RUN useradd --system --no-create-home agent-history
USER agent-history

EXPOSE 8000
CMD ["agent-history", "--help"]
