"""Real PostgreSQL and MariaDB servers for the local pipeline, started from the Debian packages.

Each server listens on 127.0.0.1 on a free port, keeps its data in a fresh temporary
directory, is started by the first caller of :func:`get_server` in a process and is stopped
when that process exits (atexit) (the tests' fixtures stop it at the end of the pytest session; the
server also dies with its parent process). Used by the tests (fixtures in tests/servers.py),
the demo (`python -m tools.demo`) and the writeback bench. Nothing here imports pytest.

Use :meth:`DbServer.fresh_database` for isolation between users of one server.

Kinds
-----
``postgres``                 wal_level=logical, max_replication_slots=max_wal_senders=10;
                             ``user`` has LOGIN REPLICATION and owns ``dbname``.
``postgres_misconfigured``   wal_level=replica, max_replication_slots=max_wal_senders=1;
                             ``user`` has no REPLICATION privilege.
``mariadb``                  log_bin on, binlog_format=ROW, binlog_row_image=FULL,
                             binlog_checksum=NONE, binlog_expire_logs_seconds=7 days,
                             binlog_row_metadata=FULL (for the binlog CDC stand-in);
                             ``user`` has ALL on ``dbname`` plus REPLICATION CLIENT/SLAVE.
``mariadb_misconfigured``    log_bin off, binlog_format=STATEMENT, binlog_row_image=MINIMAL,
                             binlog_checksum=CRC32, binlog_expire_logs_seconds=1 hour.
:class:`RestartablePostgres` a private PostgreSQL (like ``postgres``) its owner may restart.
:class:`RestartableMariaDB`  a private MariaDB (like ``mariadb``, but crash-safe: every commit
                             flushed, ``sync_binlog=1``) its owner may restart;
                             :func:`restartable_server` gives either by engine.

Packages: ``postgresql`` and ``mariadb-server`` (Debian). When a binary is missing,
:class:`ServerStartError` names the package to install.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0

POSTGRES_GOOD = {
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
}
POSTGRES_BAD = {
    "wal_level": "replica",
    "max_replication_slots": "1",
    "max_wal_senders": "1",
}
MARIADB_GOOD = [
    "--log-bin=binlog",
    "--server-id=1",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-checksum=NONE",
    "--binlog-expire-logs-seconds=604800",
    # column names, signedness, charsets and ENUM/SET values in the row events, for the
    # binlog CDC stand-in (tools/localpipe/binlog_cdc.py); DMS itself does not need it
    "--binlog-row-metadata=FULL",
]
MARIADB_BAD = [
    "--skip-log-bin",
    "--binlog-format=STATEMENT",
    "--binlog-row-image=MINIMAL",
    "--binlog-checksum=CRC32",
    "--binlog-expire-logs-seconds=3600",
]


class ServerStartError(RuntimeError):
    """A test database server could not be started."""


@dataclass(frozen=True)
class DbServer:
    """Connection facts of one running test server (and a database on it).

    ``user``/``password`` is an ordinary application login (what the code under test
    should use); ``admin_user``/``admin_password`` is the server superuser, for test
    setup that needs it (creating roles or databases).
    """

    engine: str  # "postgres" or "mariadb"
    host: str
    port: int
    user: str
    password: str
    dbname: str
    admin_user: str
    admin_password: str
    data_dir: str = field(repr=False)

    def connect(
        self,
        *,
        user: str | None = None,
        password: str | None = None,
        dbname: str | None = None,
        autocommit: bool = False,
    ) -> Any:
        """A DB-API 2 connection: ``pg8000.dbapi.Connection`` or ``pymysql.Connection``."""
        user = user or self.user
        password = self.password if password is None else password
        dbname = dbname or self.dbname
        if self.engine == "postgres":
            import pg8000.dbapi

            conn = pg8000.dbapi.connect(
                user=user,
                password=password,
                host=self.host,
                port=self.port,
                database=dbname,
                timeout=30,
            )
            conn.autocommit = autocommit
            return conn
        import pymysql

        return pymysql.connect(
            user=user,
            password=password,
            host=self.host,
            port=self.port,
            database=dbname,
            autocommit=autocommit,
            connect_timeout=30,
        )

    def native(self, *, user: str | None = None, password: str | None = None) -> Any:
        """A ``pg8000.native.Connection`` (PostgreSQL only), autocommit like psql."""
        if self.engine != "postgres":
            raise TypeError("native() is for PostgreSQL; use connect() for MariaDB")
        import pg8000.native

        return pg8000.native.Connection(
            user=user or self.user,
            password=self.password if password is None else password,
            host=self.host,
            port=self.port,
            database=self.dbname,
            timeout=30,
        )

    def admin_connect(self, dbname: str | None = None) -> Any:
        """An autocommit DB-API connection as the server superuser."""
        return self.connect(
            user=self.admin_user,
            password=self.admin_password,
            dbname=dbname or self.dbname,
            autocommit=True,
        )

    def fresh_database(self, prefix: str = "t") -> DbServer:
        """Create a new, empty database owned by (PostgreSQL) / granted to (MariaDB)
        ``user`` and return a copy of this server pointing at it."""
        name = f"{prefix}_{secrets.token_hex(4)}".lower()
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database prefix must be alphanumeric/underscore: {prefix!r}")
        conn = self.admin_connect()
        try:
            cur = conn.cursor()
            if self.engine == "postgres":
                cur.execute(f'CREATE DATABASE "{name}" OWNER "{self.user}"')
            else:
                cur.execute(f"CREATE DATABASE `{name}`")
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO %s@%s", (self.user, host))
        finally:
            conn.close()
        return replace(self, dbname=name)


# --------------------------------------------------------------------------- helpers


def _die_with_parent(sig: int, uid: int | None = None, gid: int | None = None) -> Any:
    """A ``preexec_fn`` that (optionally) drops to ``uid``/``gid`` and then asks Linux to
    send ``sig`` to the server when its parent (pytest, the demo) dies, so a killed run
    leaves no server behind. The uid switch happens here, first, because a credential
    change clears it."""

    import ctypes

    # Loaded here, in the parent: after the uid switch the child may not read the venv.
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        if gid is not None and uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG

    return arm


def _make_tmp(kind: str) -> str:
    """A fresh temp dir for one server, marked with this process's pid. Dirs left by runs
    that were killed (owner pid gone) are removed first."""
    for old in glob.glob(os.path.join(tempfile.gettempdir(), "dmsbus-*-*")):
        try:
            with open(os.path.join(old, "owner.pid"), encoding="ascii") as fh:
                owner = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    tmp = tempfile.mkdtemp(prefix=f"dmsbus-{kind}-")
    with open(os.path.join(tmp, "owner.pid"), "w", encoding="ascii") as fh:
        fh.write(str(os.getpid()))
    return tmp


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(proc: subprocess.Popen[bytes], probe: Any, log: str, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(
                f"{what} exited with code {proc.returncode} during start-up; log tail:\n"
                f"{_tail(log)}"
            )
        try:
            probe()
            return
        except Exception as exc:  # server not accepting yet
            last = exc
            time.sleep(0.1)
    raise ServerStartError(
        f"{what} not ready after {START_TIMEOUT_S:.0f}s ({last}); log tail:\n{_tail(log)}"
    )


def _run(cmd: list[str], what: str, **kw: Any) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if res.returncode != 0:
        raise ServerStartError(
            f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n"
            f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        )


@dataclass
class _Running:
    server: DbServer
    proc: subprocess.Popen[bytes]
    tmp: str
    stop_signal: int
    command: list[str] = field(default_factory=list)  # how it was started (MariaDB)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


_PG_ADMIN_PASSWORD = secrets.token_urlsafe(16)
_LOCK = threading.Lock()
_RUNNING: dict[str, _Running] = {}


def _stop_all() -> None:
    with _LOCK:
        for key in list(_RUNNING):
            _RUNNING.pop(key).stop()


_TEMPLATES: dict[str, str] = {}  # kind -> initialised data dir, copied for each server


def _remove_templates() -> None:
    for tpl in _TEMPLATES.values():
        shutil.rmtree(os.path.dirname(tpl), ignore_errors=True)
    _TEMPLATES.clear()


def _copy_template(kind: str, build: Any, dest: str) -> None:
    """Initialise a data dir once per process (``build(path)``) and copy it to ``dest``:
    initdb / mariadb-install-db are the slow part of a start-up."""
    tpl = _TEMPLATES.get(kind)
    if tpl is None or not os.path.isdir(tpl):
        root = _make_tmp(f"{kind}tpl")
        tpl = os.path.join(root, "data")
        build(root, tpl)
        _TEMPLATES[kind] = tpl
    _run(["cp", "-a", tpl, dest], f"copying the {kind} template data dir")


atexit.register(_stop_all)
atexit.register(_remove_templates)


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_bin() -> str:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not candidates:
        raise ServerStartError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin: "
            "install the Debian package 'postgresql' (apt-get install -y postgresql)"
        )
    return os.path.dirname(candidates[-1])


def _start_postgres(settings: dict[str, str], *, replication: bool) -> _Running:
    bindir = _postgres_bin()
    as_root = os.geteuid() == 0
    run_as: dict[str, Any] = {}
    if as_root:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServerStartError(
                "running as root but there is no 'postgres' OS user to run the server as: "
                "install the Debian package 'postgresql' (it creates the user)"
            ) from exc
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid}

    def initdb(root: str, data: str) -> None:
        pwfile = os.path.join(root, "pw")
        with open(pwfile, "w", encoding="utf-8") as fh:
            fh.write(_PG_ADMIN_PASSWORD + "\n")
        if as_root:
            os.chmod(root, 0o700)
            os.chown(root, run_as["user"], run_as["group"])
            os.chown(pwfile, run_as["user"], run_as["group"])
        _run(
            [
                f"{bindir}/initdb",
                "-D",
                data,
                "-U",
                "admin",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            "initdb",
            **run_as,
        )
        os.unlink(pwfile)

    tmp = _make_tmp("pg")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "postgres.log")
    admin_pw = _PG_ADMIN_PASSWORD
    app_pw = secrets.token_urlsafe(16)
    if as_root:
        os.chmod(tmp, 0o700)
        os.chown(tmp, run_as["user"], run_as["group"])
    _copy_template("pg", initdb, data)
    port = _free_port()
    conf = {
        "listen_addresses": f"'{HOST}'",
        "port": str(port),
        "unix_socket_directories": f"'{tmp}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "32MB",
        "max_connections": "50",
        **settings,
    }
    with open(os.path.join(data, "postgresql.conf"), "a", encoding="utf-8") as fh:
        fh.write("\n# tools/localpipe/servers.py\n")
        fh.writelines(f"{k} = {v}\n" for k, v in conf.items())

    logfh = open(log, "ab")
    if as_root:
        os.chown(log, run_as["user"], run_as["group"])
    proc = subprocess.Popen(
        [f"{bindir}/postgres", "-D", data],
        stdout=logfh,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # SIGKILL if the parent process is killed: backends exit on postmaster death
        preexec_fn=_die_with_parent(  # noqa: PLW1509 - syscalls only, no locks
            signal.SIGKILL, run_as.get("user"), run_as.get("group")
        ),
    )
    logfh.close()
    server = DbServer(
        engine="postgres",
        host=HOST,
        port=port,
        user="app",
        password=app_pw,
        dbname="app",
        admin_user="admin",
        admin_password=admin_pw,
        data_dir=data,
    )
    running = _Running(server, proc, tmp, signal.SIGINT)  # SIGINT = fast shutdown
    try:
        admin = replace(server, dbname="postgres")
        _wait_ready(proc, lambda: admin.admin_connect().close(), log, "postgres")
        conn = admin.admin_connect()
        try:
            cur = conn.cursor()
            repl = "REPLICATION" if replication else "NOREPLICATION"
            cur.execute(f"CREATE ROLE app LOGIN {repl} PASSWORD '{app_pw}'")
            cur.execute("CREATE DATABASE app OWNER app")
        finally:
            conn.close()
    except BaseException:
        running.stop()
        raise
    return running


# --------------------------------------------------------------------------- MariaDB


def _mariadb_bins() -> tuple[str, str]:
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db") or shutil.which(
        "mariadb-install-db", path="/usr/bin"
    )
    if not server or not install:
        raise ServerStartError(
            "MariaDB server binaries (mariadbd, mariadb-install-db) not found: install the "
            "Debian package 'mariadb-server' (apt-get install -y mariadb-server)"
        )
    return server, install


def _start_mariadb(options: list[str]) -> _Running:
    mariadbd, install_db = _mariadb_bins()
    # later options win: callers may override the defaults below
    tmp = _make_tmp("maria")
    data = os.path.join(tmp, "data")
    sock = os.path.join(tmp, "mysqld.sock")
    log = os.path.join(tmp, "mariadb.log")
    user_opt = ["--user=root"] if os.geteuid() == 0 else []

    def install(_root: str, data: str) -> None:
        _run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data}",
                *user_opt,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
                "--skip-innodb-doublewrite",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
            ],
            "mariadb-install-db",
        )

    _copy_template("maria", install, data)
    port = _free_port()
    admin_pw = secrets.token_urlsafe(16)
    app_pw = secrets.token_urlsafe(16)
    command = [
        mariadbd,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={sock}",
        f"--port={port}",
        f"--bind-address={HOST}",
        f"--pid-file={tmp}/mariadb.pid",
        f"--log-error={log}",
        *user_opt,
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=16M",
        "--innodb-flush-log-at-trx-commit=0",
        "--skip-innodb-doublewrite",
        "--max-connections=50",
        *options,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - one prctl syscall
    )
    server = DbServer(
        engine="mariadb",
        host=HOST,
        port=port,
        user="app",
        password=app_pw,
        dbname="app",
        admin_user="admin",
        admin_password=admin_pw,
        data_dir=data,
    )
    running = _Running(server, proc, tmp, signal.SIGTERM, command)

    def root_socket() -> Any:
        import pymysql

        return pymysql.connect(
            unix_socket=sock, user="root", password="", autocommit=True, connect_timeout=5
        )

    try:
        _wait_ready(proc, lambda: root_socket().close(), log, "mariadbd")
        conn = root_socket()
        try:
            cur = conn.cursor()
            cur.execute("CREATE DATABASE app")
            for host in ("127.0.0.1", "localhost"):
                cur.execute("CREATE USER 'admin'@%s IDENTIFIED BY %s", (host, admin_pw))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'admin'@%s WITH GRANT OPTION", (host,))
                cur.execute("CREATE USER 'app'@%s IDENTIFIED BY %s", (host, app_pw))
                cur.execute("GRANT ALL PRIVILEGES ON app.* TO 'app'@%s", (host,))
                cur.execute(
                    "GRANT REPLICATION CLIENT, REPLICATION SLAVE, PROCESS ON *.* TO 'app'@%s",
                    (host,),
                )
        finally:
            conn.close()
    except BaseException:
        running.stop()
        raise
    return running


# --------------------------------------------------------------------------- fixtures

_STARTERS = {
    "postgres": lambda: _start_postgres(POSTGRES_GOOD, replication=True),
    "postgres_misconfigured": lambda: _start_postgres(POSTGRES_BAD, replication=False),
    "mariadb": lambda: _start_mariadb(MARIADB_GOOD),
    "mariadb_misconfigured": lambda: _start_mariadb(MARIADB_BAD),
}


def get_server(kind: str) -> DbServer:
    """Start (once per process) and return the server of ``kind``; see the module doc."""
    with _LOCK:
        running = _RUNNING.get(kind)
        if running is None or running.proc.poll() is not None:
            running = _STARTERS[kind]()
            _RUNNING[kind] = running
        return running.server


# --------------------------------------------------------------------------- restartable


class RestartablePostgres:
    """A private PostgreSQL server (configured like ``postgres``) that a test may restart:
    the same port, data directory and users before and after. Not shared with other tests."""

    def __init__(self) -> None:
        self._running = _start_postgres(POSTGRES_GOOD, replication=True)
        self.server = self._running.server
        self.restarts = 0

    def restart(self, *, crash: bool = True) -> None:
        """Stop the server and start it again. ``crash``: immediate shutdown (SIGQUIT: every
        backend is killed, no shutdown checkpoint, crash recovery at the next start), as
        after a crash or a failover; otherwise a fast shutdown (SIGINT)."""
        proc = self._running.proc
        proc.send_signal(signal.SIGQUIT if crash else signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        bindir = _postgres_bin()
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            run_as = {"user": pw.pw_uid, "group": pw.pw_gid}
        log = os.path.join(self._running.tmp, "postgres.log")
        with open(log, "ab") as logfh:
            new = subprocess.Popen(
                [f"{bindir}/postgres", "-D", self.server.data_dir],
                stdout=logfh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent(  # noqa: PLW1509 - syscalls only, no locks
                    signal.SIGKILL, run_as.get("user"), run_as.get("group")
                ),
            )
        self._running.proc = new
        admin = replace(self.server, dbname="postgres")
        _wait_ready(new, lambda: admin.admin_connect().close(), log, "postgres (restart)")
        self.restarts += 1

    def stop(self) -> None:
        self._running.stop()


class RestartableMariaDB:
    """A private MariaDB server (configured like ``mariadb``) that a test may restart: the
    same port, data directory and users before and after. Unlike the shared one it flushes
    every commit (``innodb_flush_log_at_trx_commit=1``, ``sync_binlog=1``), so a crash loses
    no committed transaction, as on a production server. Not shared with other tests."""

    def __init__(self) -> None:
        self._running = _start_mariadb(
            [*MARIADB_GOOD, "--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"]
        )
        self.server = self._running.server
        self.restarts = 0

    def restart(self, *, crash: bool = True) -> None:
        """Stop the server and start it again. ``crash``: SIGKILL (no shutdown: InnoDB and
        binlog crash recovery at the next start), as after a crash or a failover; otherwise
        a normal shutdown (SIGTERM)."""
        proc = self._running.proc
        proc.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        new = subprocess.Popen(
            self._running.command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent(signal.SIGKILL),  # noqa: PLW1509 - one prctl syscall
        )
        self._running.proc = new
        log = os.path.join(self._running.tmp, "mariadb.log")
        _wait_ready(new, lambda: self.server.admin_connect().close(), log, "mariadbd (restart)")
        self.restarts += 1

    def stop(self) -> None:
        self._running.stop()


def restartable_server(engine: str) -> RestartablePostgres | RestartableMariaDB:
    """A private server of ``engine`` (``postgres`` or ``mariadb``) with ``restart()``."""
    if engine == "postgres":
        return RestartablePostgres()
    if engine == "mariadb":
        return RestartableMariaDB()
    raise ValueError(f"no restartable server for engine {engine!r}")


def stop_server(kind: str) -> None:
    """Stop the shared server of ``kind`` if this process started one (idempotent)."""
    with _LOCK:
        running = _RUNNING.pop(kind, None)
    if running is not None:
        running.stop()


__all__ = [
    "DbServer",
    "RestartableMariaDB",
    "RestartablePostgres",
    "ServerStartError",
    "get_server",
    "restartable_server",
    "stop_server",
]
