"""A throwaway PostgreSQL cluster in a temp directory: for the store tests, the benchmark and
local runs that want the production backend without a server to manage.

It runs the real server binaries (``initdb``, ``pg_ctl``). ``initdb`` refuses to run as root, so
as root the binaries run as the ``postgres`` user via ``runuser``. Durability is switched off
(``fsync=off``): the data is thrown away at the end anyway. ``durable=True`` keeps PostgreSQL's
production defaults (fsync, synchronous commit, full-page writes) for benchmarks that must pay
for them.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

from axon_dagster.settings.environ import child_environ

log = logging.getLogger(__name__)


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are missing or the server would not start (message says why)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_postgres_bin_dir(install: bool = True) -> Path:
    """Directory holding ``initdb``/``pg_ctl``: on PATH, else Debian's versioned dir, else (as root,
    when ``install``) ``apt-get install -y postgresql``."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        log.warning("initdb not found; installing postgresql with apt-get")
        proc = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
            capture_output=True,
            text=True,
            env=child_environ({"DEBIAN_FRONTEND": "noninteractive"}),
        )
        if proc.returncode != 0:
            raise PostgresUnavailableError(f"apt-get install postgresql failed:\n{proc.stderr[-2000:]}")
        return find_postgres_bin_dir(install=False)
    raise PostgresUnavailableError(
        "PostgreSQL server binaries not found: no initdb on PATH or under /usr/lib/postgresql/*/bin "
        "(install the 'postgresql' package)"
    )


class EphemeralPostgres:
    """``with EphemeralPostgres() as pg: url = pg.create_database("t1")``"""

    def __init__(self, base_dir: str | os.PathLike[str] | None = None, user: str = "postgres", *, durable: bool = False):
        self._base_dir = base_dir
        self._user = user
        self._durable = durable
        self._as_root = os.geteuid() == 0
        self.root: Path | None = None
        self.port: int | None = None
        self._bin: Path | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "EphemeralPostgres":
        self._bin = find_postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="axon-pg-", dir=self._base_dir))
        if self._as_root:
            # The directory must belong to the server's user; parents must be traversable.
            shutil.chown(self.root, user="postgres", group="postgres")
            os.chmod(self.root, 0o700)
        data = self.root / "data"
        self._run(
            ["initdb", "-D", str(data), "-A", "trust", "-U", self._user, "-E", "UTF8", "--no-sync", "--no-instructions"],
            "initdb",
        )
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = _free_port()
            durability = "" if self._durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {durability}-c max_connections=300"
            proc = self._run(
                ["pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "server.log"), "-w", "-t", "30", "start"],
                "pg_ctl start",
                check=False,
            )
            if proc.returncode == 0:
                log.info("ephemeral PostgreSQL running on 127.0.0.1:%s (%s)", self.port, self.root)
                return self
            last_error = proc.stderr + self._log_tail()
        self.stop()
        raise PostgresUnavailableError(f"PostgreSQL would not start:\n{last_error}")

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], "pg_ctl stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> "EphemeralPostgres":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (its backends are its children), while running."""
        try:
            return int((self.root / "data" / "postmaster.pid").read_text().split()[0]) if self.root else None
        except (OSError, ValueError, IndexError):
            return None

    # ------------------------------------------------------------ databases

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"postgresql+psycopg://{self._user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """Create a database (optionally a copy of ``template``) and return its URL."""
        import psycopg  # imported here: psycopg is a cloud-side dependency

        name = name or f"axon_{uuid.uuid4().hex[:12]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: use letters, digits and '_' only")
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self._user, dbname="postgres", autocommit=True) as conn:
            sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            conn.execute(sql)  # type: ignore[arg-type]  # identifiers checked above
        return self.url(name)

    # ------------------------------------------------------------ helpers

    def _run(self, argv: list[str], what: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._bin is not None
        argv = [str(self._bin / argv[0]), *argv[1:]]
        if self._as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=self.root or None)
        if check and proc.returncode != 0:
            raise PostgresUnavailableError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()}{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        path = (self.root or Path("/nonexistent")) / "server.log"
        try:
            return "\nserver log:\n" + path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""
