"""A PostgreSQL server for local development, run from the distribution's server binaries."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from agent_history.devservices import processes
from agent_history.devservices.processes import ServicesError
from agent_history.devservices.settings import ServicesSettings

USER = PASSWORD = DATABASE = "agent_history"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# initdb and pg_ctl refuse to run as root; as root the cluster belongs to Debian's system user.
_SYSTEM_OWNER = "postgres"
# The socket path "<dir>/.s.PGSQL.<port>" must fit in sun_path (107 bytes and a NUL).
_MAX_CLUSTER_DIR_LEN = 107 - len("/.s.PGSQL.65535")
_ENSURE_SQL = """
SELECT format('CREATE ROLE %I', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \\gexec
ALTER ROLE :"user" WITH LOGIN CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec
"""


def database_url(settings: ServicesSettings) -> str:
    port = settings.postgres_port
    return f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"


def cluster_dir(settings: ServicesSettings) -> Path:
    """Where the cluster lives (data/, socket, log): state_dir/postgres or the link's target."""
    return (settings.state_dir.absolute() / "postgres").resolve()


def log_file(settings: ServicesSettings) -> Path:
    return cluster_dir(settings) / "postgres.log"


def _tool(bindir: Path, program: str, *args: str | Path) -> list[str]:
    return [str(bindir / program), *(str(arg) for arg in args)]


def _as_owner(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    try:
        pwd.getpwnam(_SYSTEM_OWNER)
    except KeyError:
        raise ServicesError(
            f"as root, PostgreSQL runs as the `{_SYSTEM_OWNER}` user: none exists"
        ) from None
    return ["runuser", "-u", _SYSTEM_OWNER, "--", *args]


def _find_bin_dir(settings: ServicesSettings) -> Path | None:
    """The server binaries, preferring the major version the data dir was made with."""
    version_file = cluster_dir(settings) / "data" / "PG_VERSION"
    wanted = version_file.read_text().strip() if version_file.exists() else None
    debian = [pg_ctl.parent for pg_ctl in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")]
    debian.sort(key=lambda bindir: int(bindir.parent.name) if bindir.parent.name.isdigit() else 0)
    matching = [bindir for bindir in debian if wanted in (None, bindir.parent.name)]
    on_path = shutil.which("pg_ctl")
    if matching:
        return matching[-1]
    return Path(on_path).parent if on_path else (debian[-1] if debian else None)


def install(settings: ServicesSettings) -> Path:
    """Find the server binaries, installing Debian's `postgresql` package when root and missing."""
    with processes.exclusive(settings.state_dir, "postgres-install"):
        bindir = _find_bin_dir(settings)
        if bindir is None and processes.apt_install(["postgresql"], what="installing PostgreSQL"):
            bindir = _find_bin_dir(settings)
    if bindir is None:
        raise ServicesError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL 15 or newer "
            "(Debian/Ubuntu: `sudo apt-get install postgresql`) or put its bin directory on PATH"
        )
    return bindir


def _prepare_cluster_dir(settings: ServicesSettings) -> Path:
    """Create the cluster dir, owned by the user that runs the server."""
    link = settings.state_dir.absolute() / "postgres"
    if not link.is_dir():
        link.unlink(missing_ok=True)  # a link to a /var/tmp cluster that was deleted since
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        probe = _as_owner(["test", "-x", str(link.parent)])
        reachable = subprocess.run(probe, capture_output=True, check=False).returncode == 0
        if not reachable or len(str(link)) > _MAX_CLUSTER_DIR_LEN:
            # The owner cannot reach state_dir (say, under a 0700 home) or the socket path would
            # be too long: keep the cluster in /var/tmp, linked from state_dir.
            digest = hashlib.sha256(bytes(link)).hexdigest()[:12]
            link.symlink_to(Path("/var/tmp") / f"agent-history-{digest}", target_is_directory=True)
        link.resolve().mkdir(mode=0o700, exist_ok=True)
    target = link.resolve()
    if os.geteuid() == 0:
        owner = pwd.getpwnam(_SYSTEM_OWNER)
        os.chown(target, owner.pw_uid, owner.pw_gid)
    return target


def _init_cluster(bindir: Path, cluster: Path) -> None:
    if (cluster / "data" / "PG_VERSION").exists():
        return
    # initdb into a scratch dir and rename at the end: an interrupted run leaves no half cluster.
    partial = cluster / "data.partial"
    shutil.rmtree(partial, ignore_errors=True)
    auth = ["--auth-local=peer", "--auth-host=scram-sha-256"]
    initdb = _tool(bindir, "initdb", "-D", partial, *auth, "--encoding=UTF8", "--locale=C")
    processes.run_checked(_as_owner(initdb), what="initdb", cwd=cluster)
    with (partial / "postgresql.conf").open("a") as conf:
        conf.write("\ninclude_if_exists = 'agent_history.conf'\n")
    partial.rename(cluster / "data")


def _write_server_config(settings: ServicesSettings, cluster: Path) -> None:
    """Loopback only, socket beside the data; rewritten each start so a new port takes effect."""
    socket_dir = str(cluster).replace("'", "''")
    conf = cluster / "data" / "agent_history.conf"
    conf.write_text(
        f"listen_addresses = '127.0.0.1'\nport = {settings.postgres_port}\n"
        f"unix_socket_directories = '{socket_dir}'\n"
    )
    if os.geteuid() == 0:
        owner = pwd.getpwnam(_SYSTEM_OWNER)
        os.chown(conf, owner.pw_uid, owner.pw_gid)


def running_pid(settings: ServicesSettings) -> int | None:
    """The postmaster's pid when this state dir's cluster is running."""
    data = cluster_dir(settings) / "data"
    pid = processes.read_pid(data / "postmaster.pid")
    if pid is None or str(data) not in " ".join(processes.command_line(pid)):
        return None
    return pid


def start(settings: ServicesSettings) -> int:
    """Start the server (idempotent), ensure the role and database, return the postmaster pid."""
    with processes.exclusive(settings.state_dir):
        bindir = install(settings)
        pid = running_pid(settings)
        if pid is None:
            pid = _start_server(settings, bindir)
        cluster = cluster_dir(settings)
        port = str(settings.postgres_port)
        names = ["-v", f"user={USER}", "-v", f"db={DATABASE}", "-v", f"password={PASSWORD}"]
        psql = _tool(bindir, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *names)
        psql += ["-h", str(cluster), "-p", port, "-d", "postgres"]
        what = "creating the role and database"
        processes.run_checked(_as_owner(psql), what=what, cwd=cluster, stdin_text=_ENSURE_SQL)
        # The check a client makes: the database answers on the loopback TCP port.
        ready = _tool(bindir, "pg_isready", "-q", "-h", "127.0.0.1", "-p", port, "-d", DATABASE)
        processes.run_checked(ready, what=f"waiting for PostgreSQL on 127.0.0.1:{port}")
        return pid


def _start_server(settings: ServicesSettings, bindir: Path) -> int:
    if processes.port_accepts(settings.postgres_port):
        raise ServicesError(
            f"port {settings.postgres_port} is taken by a process other than our PostgreSQL"
        )
    cluster = _prepare_cluster_dir(settings)
    _init_cluster(bindir, cluster)
    _write_server_config(settings, cluster)
    log = cluster / "postgres.log"
    processes.rotate_log(log)
    pg_ctl = _tool(bindir, "pg_ctl", "-D", cluster / "data", "-l", log, "-w")
    pg_ctl += ["-t", str(START_TIMEOUT_S), "start"]
    try:
        # A new session keeps a Ctrl-C in the caller's terminal away from the server.
        processes.run_checked(_as_owner(pg_ctl), what="pg_ctl start", cwd=cluster, new_session=True)
    except ServicesError as error:
        raise ServicesError(f"{error}\n--- {log} ---\n{processes.log_excerpt(log)}") from error
    pid = running_pid(settings)
    if pid is None:
        raise ServicesError(f"PostgreSQL started but left no postmaster.pid; see {log}")
    return pid


def stop(settings: ServicesSettings) -> None:
    """Stop the server (fast shutdown, then immediate, then SIGKILL); idempotent."""
    with processes.exclusive(settings.state_dir):
        pid = running_pid(settings)
        if pid is None:
            return
        bindir = _find_bin_dir(settings)
        if bindir is not None:
            data = cluster_dir(settings) / "data"
            for mode in ("fast", "immediate"):
                pg_ctl = _tool(
                    bindir, "pg_ctl", "-D", data, "-m", mode, "-w", "-t", str(STOP_TIMEOUT_S)
                )
                subprocess.run(_as_owner([*pg_ctl, "stop"]), capture_output=True, check=False)
                if not processes.command_line(pid):
                    return
        processes.stop_process(pid, timeout=5.0)
