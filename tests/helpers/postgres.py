"""A throwaway PostgreSQL server for the tests that run the catalog on PostgreSQL.

The server is started from the machine's own PostgreSQL programs (``initdb``, ``pg_ctl``)
in a temporary folder, listens only on a Unix socket there, and is stopped at the end of
the test session; each test gets a database of its own. As root (PostgreSQL refuses to
run as root) the server runs as the ``postgres`` user, or ``nobody``. Without the programs
or the ``psycopg`` driver the tests that need it are skipped, unless
``XMR_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure. An existing server can
be used instead with ``XMR_TEST_POSTGRES_URL`` (a URL of a database on which the user may
``CREATE DATABASE``).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

DRIVER = "postgresql+psycopg"


class Unavailable(RuntimeError):
    """No PostgreSQL to test against (the message says what is missing)."""


def _program(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise Unavailable(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _run_as() -> list[str]:
    """The command prefix that runs a program as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return [_program_any("runuser", "/usr/sbin/runuser", "/sbin/runuser"), "-u", user, "--"]
    raise Unavailable("running as root and no postgres or nobody user to run PostgreSQL as")


def _program_any(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    raise Unavailable(f"{names[0]} is not installed")


@dataclass
class PostgresServer:
    """A running server: :meth:`new_database` gives each test a fresh database URL."""

    base_url: str  # a SQLAlchemy URL of the server, without the database name
    query: str = ""  # "?host=...&port=..." for a Unix socket
    folder: str | None = None  # the data folder of a server this object started
    _pg_ctl: list[str] = field(default_factory=list)
    _names: itertools.count = field(default_factory=itertools.count)

    @classmethod
    def start(cls) -> PostgresServer:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise Unavailable("the psycopg driver is not installed (pip install -e '.[postgres]')") from exc
        given = os.environ.get("XMR_TEST_POSTGRES_URL")
        if given:
            base, _, query = given.partition("?")
            return cls(base_url=base.rsplit("/", 1)[0], query="?" + query if query else "")
        initdb, pg_ctl, prefix = _program("initdb"), _program("pg_ctl"), _run_as()
        folder = tempfile.mkdtemp(prefix="xmr-test-pg-")
        if prefix:
            shutil.chown(folder, user=prefix[2])
        data = os.path.join(folder, "data")
        port = 20000 + os.getpid() % 20000  # the socket's name; no TCP port is opened
        _quiet("initdb", [*prefix, initdb, "-D", data, "-A", "trust", "-U", "xmr", "--no-sync", "-E", "UTF8"])
        options = f"-p {port} -k {folder} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        _quiet(
            "pg_ctl start",
            [*prefix, pg_ctl, "-D", data, "-o", options, "-l", os.path.join(folder, "log"), "-w", "start"],
        )
        return cls(
            base_url=f"{DRIVER}://xmr@",
            query=f"?host={folder}&port={port}",
            folder=folder,
            _pg_ctl=[*prefix, pg_ctl, "-D", data],
        )

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = f"xmr_test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self._libpq_url("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"{self.base_url}/{name}{self.query}"

    def _libpq_url(self, database: str) -> str:
        return f"{self.base_url.replace(DRIVER, 'postgresql', 1)}/{database}{self.query}"

    def stop(self) -> None:
        if self.folder is None:
            return
        subprocess.run([*self._pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _quiet(what: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise Unavailable(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")
