"""Process plumbing for the local Kafka broker and PostgreSQL server, and for the processes that
the demo and the benchmarks start beside them (Linux, via /proc)."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

# The shell puts the service in the background and exits at once: the service is re-parented
# to init, so it outlives the caller and never lingers as the caller's zombie.
_DETACH_SCRIPT = '"$@" </dev/null >>"$0" 2>&1 & echo $!'
# Kafka's "] ERROR " and PostgreSQL's "FATAL:" lines alike.
_ERROR_LINE = re.compile(r"\b(ERROR|FATAL|PANIC)\b")


class ServicesError(RuntimeError):
    """A local service could not be installed, started or stopped; the message says why."""


def run_checked(
    args: Sequence[str | Path],
    *,
    what: str,
    cwd: Path | None = None,
    stdin_text: str | None = None,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> str:
    """Run a command to completion and return its stdout; fail with its output and `what`."""
    argv = [str(arg) for arg in args]
    result = subprocess.run(
        argv,
        cwd=cwd,
        input=stdin_text,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        start_new_session=new_session,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        raise ServicesError(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{output}")
    return result.stdout


def apt_install(packages: Sequence[str], *, what: str) -> bool:
    """Install Debian packages with apt-get; False (nothing done) unless root where apt-get is."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Wait for dpkg's lock, which another installer (a parallel session) may hold, not fail.
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
    run_checked([*apt, "update"], what="apt-get update", env=env)
    install = [*apt, "install", "-y", "--no-install-recommends", *packages]
    run_checked(install, what=what, env=env)
    return True


def spawn_detached(
    args: Sequence[str | Path],
    *,
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start `args` in a new session (in `env`, else this process's environment), appending
    its output to `log_file`; return its pid."""
    argv = ["sh", "-c", _DETACH_SCRIPT, str(log_file), *(str(arg) for arg in args)]
    # A new session keeps a Ctrl-C in the caller's terminal away from the service.
    out = run_checked(
        argv,
        what="starting a background process",
        cwd=cwd,
        env=None if env is None else dict(env),
        new_session=True,
    )
    return int(out.strip())


def command_line(pid: int) -> list[str]:
    """The argv of a live process, or [] when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    # The state letter follows the last ")" (the command name itself may contain ")").
    if stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def find_process(matches: Callable[[list[str]], bool], *, hint: int | None = None) -> int | None:
    """The pid of a live process whose argv `matches`; `hint` (from a pid file) goes first."""
    candidates = [hint] if hint is not None else []
    candidates += [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    for pid in candidates:
        argv = command_line(pid)
        if argv and matches(argv):
            return pid
    return None


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port(preferred: int | None = None) -> int:
    """A TCP port on loopback that nothing listens on now: ``preferred`` when it is free."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred or 0))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_process(pid: int, *, timeout: float) -> None:
    """SIGTERM `pid`, and SIGKILL it if it is still alive after `timeout` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not command_line(pid), timeout=wait, interval=0.1):
            return
    raise ServicesError(f"process {pid} survived SIGKILL")


def rotate_log(log_file: Path) -> None:
    """Keep the previous run's log as <name>.1, so that the log holds the current run only."""
    if log_file.exists():
        log_file.replace(log_file.with_name(f"{log_file.name}.1"))


def log_excerpt(log_file: Path, lines: int = 25) -> str:
    """The log from its first error on, or its last lines when nothing looks like an error."""
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({log_file} does not exist)"
    first_error = next((i for i, line in enumerate(text) if _ERROR_LINE.search(line)), None)
    shown = text[-lines:] if first_error is None else text[first_error : first_error + lines]
    return "\n".join(shown)


@contextmanager
def exclusive(state_dir: Path, name: str = "services") -> Iterator[None]:
    """Serialise starts, stops and installs across processes (parallel test workers, shells)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / f"{name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
