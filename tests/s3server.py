"""A real S3-compatible server on 127.0.0.1 for the test session: moto's server on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_bucket(endpoint: str, name: str) -> None:
    """An S3 `PUT /bucket` (path style) to the server at `endpoint` (`127.0.0.1:PORT`)."""
    response = httpx.put(f"http://{endpoint}/{name}", timeout=10)
    response.raise_for_status()


class ThrowawayS3:
    """`python -m moto.server -H 127.0.0.1 -p PORT`, started and stopped by the test session."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="noetl-s3-"))
        self.port = _free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> str:
        """Start the server and wait until it answers; returns the endpoint `127.0.0.1:PORT`."""
        log = (self.root / "log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(f"http://{self.endpoint}/", timeout=1)
                return self.endpoint
            except httpx.TransportError:
                time.sleep(0.2)
        output = (self.root / "log").read_text(errors="replace")
        self.stop()
        raise RuntimeError(f"moto server on {self.endpoint} did not answer within {timeout}s:\n{output}")

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            self.process = None
            shutil.rmtree(self.root, ignore_errors=True)
