"""
Real servers on 127.0.0.1 for the test-suite and the benchmarks: PostgreSQL, MariaDB, S3 (moto),
MongoDB (secantusdb wire-protocol server), MLflow (sqlite backend).

Each ``start_*`` function is a context manager that starts the server on a free port, waits until
it answers, yields a small description (URI, credentials) and stops it afterwards. The PostgreSQL
and MongoDB servers it started can also be restarted in between (same port, same data):
:meth:`PostgresServer.restart`, :meth:`MongoServer.restart` (the fault injectors of
tests/harness/injectors.py use them; restart a server of your own, not a session fixture's).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

PG_USER = "mlops"
PG_PASSWORD = "pg-s3cret-pw"
PG_DB = "mlops"
MONGO_USER = "mlops"
MONGO_PASSWORD = "mongo-s3cret-pw"
S3_BUCKET = "mlops-test"


class ServerUnavailable(RuntimeError):
    """The server's binary is not installed on this machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server process exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --------------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PgControl:
    """How :func:`start_postgres` runs ``pg_ctl`` on its cluster (for :meth:`PostgresServer.restart`)."""

    runner: tuple[str, ...]  # ("runuser", "-u", "postgres", "--") as root
    pg_ctl: str
    data: str
    log: str
    options: str


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    control: _PgControl | None = field(default=None, compare=False, repr=False)

    def restart(self, mode: str = "fast") -> None:
        """
        Restart the cluster with ``pg_ctl restart -m mode``: same port, same data directory. Returns
        when it accepts connections again. Every open connection is gone (its next statement fails).

        ``fast`` rolls back open transactions and checkpoints; ``immediate`` is a crash (no
        checkpoint, WAL replay at start); ``smart`` waits for every client to disconnect (60 s at
        most, then fails). The test cluster runs with ``synchronous_commit=off``, under which an
        immediate stop would lose the commits of the last few hundred milliseconds: before an
        immediate restart one synchronous commit flushes the WAL, so that what was committed
        survives as it does on a production server (``synchronous_commit=on``).

        :param mode: ``fast``, ``immediate`` or ``smart``.
        """
        if self.control is None:
            raise RuntimeError(
                "this PostgresServer was not started by start_postgres(): it cannot be restarted"
            )
        if mode not in ("fast", "immediate", "smart"):
            raise ValueError(f"mode={mode!r}: use 'fast', 'immediate' or 'smart'")
        if mode == "immediate":
            import psycopg

            with psycopg.connect(self.dsn) as conn:
                conn.execute("SET synchronous_commit TO on")
                # A WAL record of its own, so the commit is synchronous: it flushes the WAL up to it,
                # with every asynchronous commit before it (txid_current() alone writes none).
                conn.execute("SELECT pg_logical_emit_message(true, 'mlops-restart', 'flush')")
        ctl = self.control
        argv = [*ctl.runner, ctl.pg_ctl, "-D", ctl.data, "-l", ctl.log, "-w", "-t", "60", "-m", mode]
        result = subprocess.run(
            [*argv, "-o", ctl.options, "restart"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl restart -m {mode} failed: {result.stdout}{result.stderr}")

    @property
    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={self.database}"
        )

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


def postgres_bindir() -> str:
    """The PostgreSQL server binaries: $PG_BINDIR, pg_config --bindir, or Debian's layout."""
    if env := os.environ.get("PG_BINDIR"):
        return env
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for path in reversed(candidates):
        if os.path.exists(os.path.join(path, "initdb")):
            return path
    if initdb := shutil.which("initdb"):
        return os.path.dirname(initdb)
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: `apt-get install postgresql` or set PG_BINDIR"
    )


@contextlib.contextmanager
def start_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """
    A throwaway cluster. Tests run it with fsync and synchronous commits off (fast); benchmarks pass
    ``durable=True`` for the production defaults, so per-commit costs are what users pay.
    """
    bindir = postgres_bindir()
    as_root = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix="mlops-pg-")
    runner: list[str] = []
    if as_root:
        # initdb refuses to run as root: the cluster belongs to the postgres user.
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        runner = ["runuser", "-u", "postgres", "--"]
    pwfile = os.path.join(base, "pw")
    Path(pwfile).write_text(PG_PASSWORD + "\n")
    if as_root:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    data = os.path.join(base, "data")
    port = free_port()
    subprocess.run(
        [
            *runner,
            f"{bindir}/initdb",
            "-D",
            data,
            "-U",
            PG_USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c max_connections=50"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        [
            *runner,
            f"{bindir}/pg_ctl",
            "-D",
            data,
            "-l",
            os.path.join(base, "pg.log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        _create_db(port)
        control = _PgControl(tuple(runner), f"{bindir}/pg_ctl", data, os.path.join(base, "pg.log"), options)
        yield PostgresServer("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DB, control)
    finally:
        subprocess.run(
            [*runner, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


def _create_db(port: int) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=PG_USER,
        password=PG_PASSWORD,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f"CREATE DATABASE {PG_DB}")


# --------------------------------------------------------------------------------------------------
# S3 (moto server over HTTP)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    region: str = "us-east-1"

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])


@contextlib.contextmanager
def start_s3(*, enforce_auth: bool = False) -> Iterator[S3Server]:
    """
    moto's S3 server with a bucket and an IAM user's access key.

    With ``enforce_auth`` request signatures are checked (the first three, unauthenticated, calls
    create the user), so a wrong secret gets 403 like real S3. moto 5.2's signature check rejects
    valid requests whose query has a '/' (ListObjectsV2 with a prefix), so data tests use a server
    without enforcement and only the credential tests use this mode.
    """
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(exe):
        raise ServerUnavailable("moto_server not found: install moto[server]")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "3"} if enforce_auth else {})},
    )
    try:
        wait_port(port, proc=proc)
        import json

        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
            region_name="us-east-1",
        )
        iam.create_user(UserName="mlops")
        iam.put_user_policy(
            UserName="mlops",
            PolicyName="all",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName="mlops")["AccessKey"]
        server = S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], S3_BUCKET)
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        client.create_bucket(Bucket=S3_BUCKET)
        yield server
    finally:
        _stop(proc, grace=5)


# --------------------------------------------------------------------------------------------------
# MongoDB wire protocol (secantusdb) or a real MongoDB from $MONGO_URI
# --------------------------------------------------------------------------------------------------
class _MongoControl:
    """The secantusdb process of :func:`start_mongo` (replaced by :meth:`MongoServer.restart`)."""

    def __init__(self, cmd: list[str], log: IO[bytes]) -> None:
        self.cmd = cmd
        self.log = log
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> int:
        """SIGKILL the server and reap it; returns its pid."""
        with self.lock:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return self.proc.pid

    def spawn(self) -> None:
        with self.lock:
            if self.proc.poll() is None:
                raise RuntimeError(f"the MongoDB server (pid {self.proc.pid}) is still running")
            self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)


@dataclass(frozen=True)
class MongoServer:
    """
    A MongoDB server. One started by :func:`start_mongo` (secantusdb) can be killed and restarted:
    its storage is on disk (WiredTiger files under ``--storage-path``) and is kept across a restart,
    users included. But measured with secantusdb 0.7.0b3 (SIGKILL right after the acknowledgement):
    a plain write with the default write concern was lost, a plain write with ``j: true``
    (``journal=True`` in pymongo) survived, and a committed *transaction* was lost even with
    ``j: true`` (its journal is flushed in the background); 0.5 s after the commit it survived.
    Real MongoDB honours ``j: true`` for commits, so this is the emulator's: a verdict that compares
    a collection after a kill holds for data acknowledged more than ~1 s before the kill (a kill
    *during* a write, :func:`tests.harness.injectors.kill_mongo_when`, is what the client must absorb).
    """

    host: str
    port: int
    user: str | None
    password: str | None
    uri: str
    direct: bool = True
    control: _MongoControl | None = field(default=None, compare=False, repr=False)

    @property
    def pid(self) -> int | None:
        """The server process's pid (None for an external server from $MONGO_URI)."""
        return self.control.proc.pid if self.control is not None else None

    def _control(self) -> _MongoControl:
        if self.control is None:
            raise RuntimeError(
                "this MongoServer was not started by start_mongo() (MONGO_URI?): it cannot be restarted"
            )
        return self.control

    def kill(self) -> int:
        """SIGKILL the server (a crash); returns the killed pid. :meth:`start_again` brings it back."""
        return self._control().kill()

    def start_again(self) -> None:
        """Start the killed server on the same port and storage; returns when it answers ``ping``."""
        control = self._control()
        control.spawn()
        wait_port(self.port, proc=control.proc)
        _mongo_ping(self.uri)

    def restart(self, down_for: float = 0.0) -> None:
        """
        SIGKILL the server, wait ``down_for`` seconds, start it again on the same port and storage;
        returns when it answers ``ping`` (~0.5 s to start here). Open client connections fail.
        """
        self.kill()
        time.sleep(down_for)
        self.start_again()


def _mongo_ping(uri: str, timeout: float = 30.0) -> None:
    import pymongo

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000) as client:
                client.admin.command("ping")
                return
        except Exception as err:
            last = err
            time.sleep(0.2)
    raise TimeoutError(f"MongoDB server did not answer ping: {last}")


@contextlib.contextmanager
def start_mongo() -> Iterator[MongoServer]:
    if uri := os.environ.get("MONGO_URI"):
        import pymongo

        parsed = pymongo.uri_parser.parse_uri(uri)
        host, port = parsed["nodelist"][0]
        yield MongoServer(host, port, parsed.get("username"), parsed.get("password"), uri, direct=False)
        return
    exe = shutil.which("secantusd-py") or os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    if not os.path.exists(exe):
        raise ServerUnavailable("secantusd-py not found: install secantusdb==0.7.0b3 (test dependency)")
    storage = tempfile.mkdtemp(prefix="mlops-mongo-")
    port = free_port()
    cmd = [
        exe,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
    ]
    log = open(os.path.join(storage, "server.log"), "wb")  # noqa: SIM115
    # Provision the user without auth, then restart with --auth (how secantusdb is set up).
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    control: _MongoControl | None = None
    try:
        wait_port(port, proc=proc)
        plain = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        _mongo_ping(plain)
        import pymongo

        with pymongo.MongoClient(plain) as client:
            client.admin.command(
                "createUser",
                MONGO_USER,
                pwd=MONGO_PASSWORD,
                roles=["root"],
                mechanisms=["SCRAM-SHA-256"],
            )
        _stop(proc)
        control = _MongoControl([*cmd, "--auth"], log)
        wait_port(port, proc=control.proc)
        uri = (
            f"mongodb://{MONGO_USER}:{MONGO_PASSWORD}@127.0.0.1:{port}/"
            "?directConnection=true&authSource=admin&authMechanism=SCRAM-SHA-256"
        )
        _mongo_ping(uri)
        yield MongoServer("127.0.0.1", port, MONGO_USER, MONGO_PASSWORD, uri, control=control)
    finally:
        _stop(control.proc if control is not None else proc)
        log.close()
        shutil.rmtree(storage, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# MariaDB (Debian's mariadb-server binaries, a throwaway datadir)
# --------------------------------------------------------------------------------------------------
MARIADB_USER = "mlops"
MARIADB_PASSWORD = "maria-s3cret-pw"
MARIADB_DB = "mlops"


@dataclass(frozen=True)
class MariaDbServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    socket: str


def mariadb_binaries() -> tuple[str, str]:
    """``mariadb-install-db`` and ``mariadbd`` (Debian puts the server in /usr/sbin, off a user's PATH)."""
    found = []
    for name in ("mariadb-install-db", "mariadbd"):
        path = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
        )
        if path is None:
            raise ServerUnavailable(
                f"MariaDB server binary {name} not found: `apt-get install mariadb-server`"
            )
        found.append(path)
    return found[0], found[1]


@contextlib.contextmanager
def start_mariadb() -> Iterator[MariaDbServer]:
    """
    A throwaway MariaDB: a new datadir in a temporary folder, a server on a free port of 127.0.0.1
    (socket in the same folder), durability off like the PostgreSQL cluster, and a password user
    created by an init file at start.
    """
    install_db, mariadbd = mariadb_binaries()
    base = tempfile.mkdtemp(prefix="mlops-maria-")
    data = os.path.join(base, "data")
    os.mkdir(data)
    user_args: list[str] = []
    if os.geteuid() == 0:
        # mariadbd refuses to run as root: the datadir belongs to the mysql user.
        pw = pwd.getpwnam("mysql")
        for path in (base, data):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        user_args = ["--user=mysql"]
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", *user_args, "--skip-test-db"],
        check=True,
        capture_output=True,
    )
    init = os.path.join(base, "init.sql")
    Path(init).write_text(
        f"CREATE DATABASE IF NOT EXISTS {MARIADB_DB};\n"
        f"CREATE USER IF NOT EXISTS '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'%';\n"
    )
    socket_path = os.path.join(base, "mysqld.sock")
    port = free_port()
    log = open(os.path.join(base, "server.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            *user_args,
            "--bind-address=127.0.0.1",
            f"--port={port}",
            f"--socket={socket_path}",
            f"--pid-file={os.path.join(base, 'mysqld.pid')}",
            f"--init-file={init}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=64M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_bin",
            "--max-connections=50",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, timeout=60, proc=proc)
        _mariadb_ping(port)
        yield MariaDbServer("127.0.0.1", port, MARIADB_USER, MARIADB_PASSWORD, MARIADB_DB, socket_path)
    finally:
        _stop(proc, grace=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _mariadb_ping(port: int, timeout: float = 30.0) -> None:
    """The port opens before the init file has created the user: wait until it logs in."""
    import pymysql

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            pymysql.connect(
                host="127.0.0.1", port=port, user=MARIADB_USER, password=MARIADB_PASSWORD, database=MARIADB_DB
            ).close()
            return
        except pymysql.MySQLError as err:
            last = err
            time.sleep(0.2)
    raise TimeoutError(f"MariaDB did not accept the test user: {last}")


# --------------------------------------------------------------------------------------------------
# Redis (Debian's redis-server): the Celery broker of the CeleryExecutor test
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@contextlib.contextmanager
def start_redis() -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port of 127.0.0.1: no persistence, its own folder."""
    exe = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if exe is None:
        raise ServerUnavailable("redis-server not found: `apt-get install redis-server`")
    base = tempfile.mkdtemp(prefix="mlops-redis-")
    port = free_port()
    log = open(os.path.join(base, "redis.log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", base, "--save", "", "--appendonly", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, proc=proc)
        yield RedisServer("127.0.0.1", port)
    finally:
        _stop(proc, grace=10)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
