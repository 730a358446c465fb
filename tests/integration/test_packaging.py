"""What an agent worker gets from `pip install agent-history`: the producer and the contract,
one import name, and none of the server side.

Builds every member's wheel with the pinned uv (.local/tools, which `./run` installs), reads
the producer's locked dependency set, and installs its two wheels into a fresh virtual
environment. Needs the package index or a warm uv cache: the build backend and the producer's
dependencies come from there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from zipfile import ZipFile

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".local" / "tools" / "bin" / "uv"
# Each member distribution and the one package it adds to the agent_history namespace.
PACKAGE_OF = {
    "agent-history-contract": "contract",
    "agent-history": "producer",
    "agent-history-read-model": "read_model",
    "agent-history-projector": "projector",
    "agent-history-api": "api",
    "agent-history-server": "server",
    "agent-history-devservices": "devservices",
}
PRODUCER_INSTALL = ("agent-history", "agent-history-contract")
# The OpenTelemetry API is the worker's one tracing dependency: its SDK and exporters are the
# worker's own choice, and the services'.
TRACING_SIDE = {
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-fastapi",
}
SERVER_SIDE = (
    {"fastapi", "starlette", "sqlalchemy", "asyncpg", "alembic", "uvicorn"}
    | TRACING_SIDE
    | {name for name in PACKAGE_OF if name not in PRODUCER_INSTALL}
)

# Runs in the fresh environment: the worker's import, then what got installed and where.
_INSPECT = """
import importlib.metadata as metadata, importlib.util, json

from agent_history.producer import ProducerSettings, Publisher, track_execution

Publisher(ProducerSettings())
print(json.dumps({
    "installed": sorted(d.metadata["Name"].lower() for d in metadata.distributions()),
    "top_level": {
        name: sorted({f.parts[0] for f in metadata.distribution(name).files
                      if not f.parts[0].endswith(".dist-info")})
        for name in ("agent-history", "agent-history-contract")
    },
    "importable": [name for name in ("agent_history.read_model", "agent_history.projector",
                                     "agent_history.api", "agent_history.server",
                                     "agent_history.devservices", "sqlalchemy", "fastapi",
                                     "opentelemetry.sdk")
                   if importlib.util.find_spec(name) is not None],
}))
"""


def _uv(*args: str | Path) -> str:
    """Run the pinned uv in the repository root and return its output; fail with its errors."""
    assert UV.exists(), f"the pinned uv is missing at {UV}: `./run test` installs it"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "PYTHONPATH": str(UV.parents[1])}
    env.pop("VIRTUAL_ENV", None)  # every command names its environment explicitly
    argv = [str(UV), *map(str, args)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr}"
    return done.stdout


def _producer_lock(*options: str) -> str:
    """The producer's locked dependencies as requirements (name==version lines)."""
    return _uv(
        "export", "--package", "agent-history", "--frozen", "--no-dev", "--no-hashes", *options
    )


def _files(wheel: Path) -> list[str]:
    with ZipFile(wheel) as archive:
        return archive.namelist()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every workspace member's wheel, by distribution name."""
    out = tmp_path_factory.mktemp("wheels")
    _uv("build", "--all-packages", "--wheel", "--quiet", "-o", out)
    built = {}
    for wheel in out.glob("*.whl"):
        metadata = next(f for f in _files(wheel) if f.endswith(".dist-info/METADATA"))
        with ZipFile(wheel) as archive:
            lines = archive.read(metadata).decode().splitlines()
        built[next(line[5:].strip() for line in lines if line.startswith("Name:"))] = wheel
    return built


def test_every_workspace_member_is_checked() -> None:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]
    names = {
        tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]["name"]
        for member in members["members"]
    }
    assert names == set(PACKAGE_OF)


def test_every_wheel_holds_its_own_package_and_nothing_else(wheels: dict[str, Path]) -> None:
    assert set(wheels) == set(PACKAGE_OF)
    for name, wheel in wheels.items():
        package = f"agent_history/{PACKAGE_OF[name]}/"
        files = _files(wheel)
        dist_info = next(f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA"))
        assert dist_info.startswith(f"{name.replace('-', '_')}-"), dist_info
        # One import name: no agent_history/__init__.py, no resource beside the package.
        outside = [f for f in files if not f.startswith((package, f"{dist_info}/"))]
        assert outside == [], f"{wheel.name} holds files outside {package} and its .dist-info/"
        assert any(f.endswith(".py") for f in files), f"{wheel.name} holds no code"


def test_the_producer_install_holds_python_code_only(wheels: dict[str, Path]) -> None:
    # Build resources (the broker's pom.xml, log configuration) belong to devservices alone.
    for name in PRODUCER_INSTALL:
        code = [f for f in _files(wheels[name]) if f.startswith("agent_history/")]
        assert [f for f in code if not f.endswith((".py", "py.typed"))] == [], name


def test_the_producer_locks_no_server_side_dependency() -> None:
    lines = _producer_lock("--no-header", "--no-annotate").splitlines()
    locked = {line.split("==")[0].lower() for line in lines if "==" in line}
    assert {"aiokafka", "pydantic", "opentelemetry-api"} <= locked, lines
    assert locked & SERVER_SIDE == set()


def test_the_producer_wheels_install_and_run_alone(wheels: dict[str, Path], tmp_path: Path) -> None:
    # The locked versions as constraints: the environment a worker gets from the lock.
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(_producer_lock("--no-emit-workspace"))
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    wheel_files = [wheels[name] for name in PRODUCER_INSTALL]
    _uv("pip", "install", "--quiet", "--python", python, "-c", constraints, *wheel_files)

    # From tmp_path, so that nothing of the repository is on the path.
    run = subprocess.run(
        [str(python), "-c", _INSPECT], cwd=tmp_path, capture_output=True, text=True, check=False
    )

    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert {"agent-history", "agent-history-contract", "aiokafka", "opentelemetry-api"} <= set(
        seen["installed"]
    )
    assert "faststream" not in seen["installed"], "the producer drives aiokafka itself"
    assert set(seen["installed"]) & SERVER_SIDE == set()
    assert seen["top_level"] == {name: ["agent_history"] for name in PRODUCER_INSTALL}
    assert seen["importable"] == [], "the server side is importable in a producer install"
