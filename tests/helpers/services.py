"""Real services for tests, on 127.0.0.1 and free ports, stopped by process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from rakuten import PROJECT_ROOT, defaults


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer in {timeout}s: {log.read_text()[-2000:]}")


def start_mlflow_server(backend_uri: str, artifacts: Path, port: int, log: Path) -> subprocess.Popen:
    """`mlflow server` on 127.0.0.1:port with proxied artifacts, its own process group; waits for /health."""
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    with open(log, "a") as out:
        process = subprocess.Popen(
            [mlflow_cli, "server", "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=defaults.server_environment({**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}),
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process, log)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a service and every process it spawned (its process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        except ProcessLookupError:
            pass


PG_BIN = Path(os.environ.get("RAKUTEN_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Postgres:
    """A throwaway PostgreSQL server on 127.0.0.1 (as the `postgres` user when run as root)."""

    def __init__(self, port: int):
        import shutil
        import tempfile

        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="rakuten-pg-"))  # not under root's home: postgres enters it
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options, "-w", "start")

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "initdb").is_file() and (PG_BIN / "pg_ctl").is_file()

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([*self.as_owner, str(PG_BIN / program), *args], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr[-2000:]}")

    def create_database(self, name: str) -> str:
        """A new database; its SQLAlchemy URL (psycopg 3)."""
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", f"CREATE DATABASE {name}")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        import shutil

        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def serve(store: str, folder, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = folder / f"server-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "rakuten.serve", "--port", str(port), *args],
                                   cwd=PROJECT_ROOT, env={**os.environ, "MLFLOW_TRACKING_URI": store}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", process, log)
    except BaseException:
        stop(process)
        raise
    return process, f"http://127.0.0.1:{port}"
