"""A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, a cluster made by initdb in a temporary
folder, listening on 127.0.0.1 only (on a free port) with its unix socket in that folder, password login (scram).

PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres` user Debian's package
creates (else `nobody`). `PostgresCluster.start()` raises `Unavailable` with the reason when it cannot run; the
fixtures turn that into a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType

from modelhost.testing import free_port

USER = "modelhost"


class Unavailable(Exception):
    """PostgreSQL cannot be started here (the reason is the message)."""


def _driver() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise Unavailable("the psycopg driver is not installed (pip install 'modelhost[postgres]')") from None
    return psycopg


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql; scripts/system-packages)")


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise Unavailable("running as root and no `postgres` or `nobody` user to run PostgreSQL as")


class PostgresCluster:
    def __init__(self) -> None:
        self.psycopg = _driver()
        self.bin = _bin_dir()
        self.user = _run_as()
        self.password = "pw-" + secrets.token_hex(8)
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="modelhost-pg-"))  # in /tmp: the postgres user can reach it
        self.data = self.folder / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self._databases = 0
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        self._initdb()

    def _as_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        done = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "-A", "scram-sha-256",
             f"--pwfile={pwfile}", "-E", "UTF8", "--no-locale", "--no-sync"],
            capture_output=True, text=True, timeout=120, **self._as_user(),
        )  # fmt: skip
        pwfile.unlink()
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 30.0) -> PostgresCluster:
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 (the server writes it while it runs)
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT, **self._as_user(),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except self.psycopg.OperationalError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    tail = (self.folder / "postgres.log").read_text(errors="replace")[-800:]
                    raise Unavailable(f"postgres did not start ({exc}): {tail}") from None
                time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT: PostgreSQL's fast shutdown (sessions are ended); SIGKILL: a crash."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def new_database(self) -> str:
        """A fresh, empty database; its URL (with the password)."""
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with self.psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a name made here, never input
        return self.url(name)

    def execute(self, url: str, sql: str, *params: object) -> None:
        """A statement behind modelhost's back, as a hand edit or another program would."""
        with self.psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.encode(), params or None)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
