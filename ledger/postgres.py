"""Embedded PostgreSQL for a first run with nothing set up, and small helpers to create and drop databases.

The server binaries come from the `pgserver` wheel; we drive `initdb` and `pg_ctl` ourselves rather than
through `pgserver.get_server` because its shared-handle bookkeeping never stops a server once a previous
process was killed, and because as root it opens every ancestor directory to the world. Here:

- the server listens on a unix socket only (no TCP port to collide with), inside the data directory when
  the path is short enough for a socket, else in a short directory under the system temp dir;
- PostgreSQL refuses to run as root, so when we are root the server runs as the system user `pgserver`
  (created on first use, the same name `pgserver` itself uses) and its data directory belongs to it;
- the data directory is kept between runs: a second start reuses it, and a server left running by a killed
  process is adopted and stopped by whoever adopts it.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg

logger = logging.getLogger(__name__)

SERVER_USER = "pgserver"
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file `.s.PGSQL.5432`; nothing listens on TCP
_SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes on Linux; keep a margin
_START_TIMEOUT_SECONDS = 60
_STOP_TIMEOUT_SECONDS = 60


ASYNCPG_SCHEME = "postgresql+asyncpg"
_ACCEPTED_SCHEMES = ("postgresql+asyncpg", "postgresql", "postgres")


def normalise_database_url(url: str) -> str:
    """Return `url` in the `postgresql+asyncpg://` form SQLAlchemy needs.

    `postgres://` (Heroku style) and `postgresql://` (libpq style) are accepted because that is what
    hosting platforms and `psql` users hand out; any other driver is a configuration error.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme.lower() not in _ACCEPTED_SCHEMES:
        raise ValueError(
            f"database URL must start with one of {', '.join(s + '://' for s in _ACCEPTED_SCHEMES)}; "
            f"got {scheme + sep if sep else 'no scheme'}"
        )
    return f"{ASYNCPG_SCHEME}://{rest}"


def asyncpg_dsn(url: str) -> str:
    """The same database as a plain `postgresql://` DSN, which raw asyncpg (and psql) understand."""
    return "postgresql://" + normalise_database_url(url).partition("://")[2]


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


def _bin_dir() -> Path:
    # Located without importing `pgserver`, whose import has side effects (runtime dirs, lock files, warnings).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the pgserver package is not installed; set DATABASE_URL instead")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def _ensure_server_user() -> _RunAs:
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", SERVER_USER],
            check=True,
            capture_output=True,
            text=True,
        )
        entry = pwd.getpwnam(SERVER_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=SERVER_USER)


def _open_for_traversal(path: Path) -> None:
    """Let the server user reach `path`: add search (x, not read) permission for others on its ancestors."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.warning("granting o+x on %s so the embedded PostgreSQL can reach its data", directory)
            directory.chmod(mode | stat.S_IXOTH)


def _server_env() -> dict[str, str]:
    # PG* variables of the caller (PGPORT, PGHOST, PGDATA...) must not redirect the embedded server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process, with its data in `pgdata` (kept between runs)."""

    def __init__(self, pgdata: Path, *, durable: bool = True) -> None:
        """`durable=False` turns fsync off: for throw-away test servers only, where it makes creating
        a database ten times faster; a crash of the machine may then corrupt the data."""
        self.pgdata = Path(pgdata).expanduser().absolute()
        self.durable = durable
        self._lock = threading.Lock()
        self._running = False
        self._run_as: _RunAs | None = None

    # -- public -------------------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """Directory holding the server's unix socket (the data dir itself when the path is short)."""
        if len(str(self.pgdata / f".s.PGSQL.{PORT}")) <= _SOCKET_PATH_LIMIT:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"exchange-pg-{digest}"

    @property
    def url(self) -> str:
        """`postgresql+asyncpg://` URL of the `postgres` database; works for SQLAlchemy and (via
        `asyncpg_dsn`) for raw asyncpg."""
        return self.url_for(SUPERUSER)

    def url_for(self, database: str) -> str:
        return normalise_database_url(
            f"postgresql://{SUPERUSER}@/{quote(database)}?host={quote(str(self.socket_dir))}&port={PORT}"
        )

    @property
    def is_running(self) -> bool:
        return self._status() == 0

    def start(self) -> str:
        """Initialise the data directory if new, start (or adopt) the server, return its URL."""
        with self._lock:
            self._prepare_directories()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            if self._status() == 0:
                logger.info("adopting embedded PostgreSQL already running in %s", self.pgdata)
            else:
                self._pg_ctl_start()
            if not self._running:
                atexit.register(self.stop)
            self._running = True
            logger.info("embedded PostgreSQL ready", extra={"pgdata": str(self.pgdata), "socket_dir": str(self.socket_dir)})
            return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are rolled back). Data stays; safe to call twice."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            atexit.unregister(self.stop)
            if self._status() != 0:
                logger.info("embedded PostgreSQL in %s was already stopped", self.pgdata)
                return
            result = self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(_STOP_TIMEOUT_SECONDS)])
            if result.returncode != 0 and self._status() == 0:
                raise EmbeddedPostgresError(f"pg_ctl stop failed: {result.stderr.strip()}")
            logger.info("embedded PostgreSQL stopped", extra={"pgdata": str(self.pgdata)})

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------------

    def _prepare_directories(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.pgdata.exists()
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            self._run_as = _ensure_server_user()
            _open_for_traversal(self.pgdata.parent)
            _open_for_traversal(_bin_dir())
            if fresh or self.pgdata.stat().st_uid != self._run_as.uid:
                os.chown(self.pgdata, self._run_as.uid, self._run_as.gid)
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            if self._run_as is not None:
                os.chown(socket_dir, self._run_as.uid, self._run_as.gid)

    def _run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0 and self._run_as is None:
            self._run_as = _ensure_server_user()
        kwargs: dict[str, object] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.uid, "group": self._run_as.gid, "extra_groups": []}
        # Output goes to files, not pipes: pg_ctl's daemonised postmaster would keep a pipe open forever.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(
                args, stdout=out, stderr=err, text=True, env=_server_env(), timeout=timeout, check=False,
                stdin=subprocess.DEVNULL, cwd="/", **kwargs,  # type: ignore[arg-type]
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())

    def _pg_ctl(self, args: list[str], timeout: float = _START_TIMEOUT_SECONDS + 10) -> subprocess.CompletedProcess[str]:
        return self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args], timeout)

    def _status(self) -> int:
        """pg_ctl status: 0 running, 3 not running, 4 no valid data directory."""
        if not (self.pgdata / "PG_VERSION").exists():
            return 4
        return self._pg_ctl(["status"], timeout=30).returncode

    def _initdb(self) -> None:
        logger.info("initialising embedded PostgreSQL data directory %s", self.pgdata)
        result = self._run(
            [str(_bin_dir() / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-instructions", *([] if self.durable else ["--no-sync"])],
            timeout=120,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed in {self.pgdata}: {result.stderr.strip() or result.stdout.strip()}")

    def _pg_ctl_start(self) -> None:
        log_file = self.pgdata / "log"
        options = f"-h '' -k '{self.socket_dir}' -p {PORT}"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._pg_ctl(
            ["start", "-w", "-t", str(_START_TIMEOUT_SECONDS), "-l", str(log_file), "-o", options]
        )
        if result.returncode != 0:
            tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"pg_ctl start failed in {self.pgdata}: {result.stderr.strip() or result.stdout.strip()}\n{tail}"
            )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_url_for(server_url: str, database: str) -> str:
    """The URL of another database on the same server as `server_url` (path replaced, query kept)."""
    from sqlalchemy.engine import make_url

    return make_url(normalise_database_url(server_url)).set(database=database).render_as_string(hide_password=False)


async def database_exists(server_url: str, name: str) -> bool:
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def create_database(
    server_url: str, name: str, *, template: str | None = None, file_copy: bool = False
) -> str:
    """CREATE DATABASE `name` (copied from `template` when given); returns its URL.

    `file_copy=True` asks PostgreSQL 15+ to copy the template's files instead of WAL-logging every
    block: much faster for the small databases tests make (ignored by older servers)."""
    statement = f"CREATE DATABASE {_quote_ident(name)}"
    if template is not None:
        statement += f" TEMPLATE {_quote_ident(template)}"
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        if file_copy and conn.get_server_version().major >= 15:
            statement += " STRATEGY FILE_COPY"
        await conn.execute(statement)
    finally:
        await conn.close()
    return database_url_for(server_url, name)


async def ensure_database(server_url: str, name: str) -> str:
    """Create database `name` unless it exists; returns its URL."""
    if not await database_exists(server_url, name):
        try:
            await create_database(server_url, name)
        except asyncpg.DuplicateDatabaseError:
            pass  # created concurrently by someone else: just as good
    return database_url_for(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS `name`, disconnecting its sessions (PostgreSQL 13+)."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")
    finally:
        await conn.close()


@contextlib.contextmanager
def resolved_database(database_url: str | None, pgdata: Path) -> Iterator[str]:
    """The database to use for the duration of a command: `database_url` when set, else an embedded
    server on `pgdata`, started here and stopped on exit. Yields a `postgresql+asyncpg://` URL."""
    if database_url:
        yield normalise_database_url(database_url)
        return
    with EmbeddedPostgres(pgdata) as url:
        yield url
