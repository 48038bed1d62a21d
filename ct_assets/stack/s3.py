"""An S3-protocol server on 127.0.0.1: moto in server mode as a child process, with one
bucket made through boto3, the client every S3 caller here ends up in.

A subprocess, not moto's in-process ThreadedMotoServer: the MLflow server and Dagster's
run workers are other processes and must all see the same bucket, as they would a real
object store; and a subprocess can be stopped by its pid like the other servers.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ct_assets.stack.process import LOOPBACK, ServerProcess, free_port, http_status

# moto accepts any key pair; these are the ones its documentation uses.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str
    pid: int

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def env(self) -> dict[str, str]:
        """The variables boto3, botocore and s3fs read for themselves."""
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ACCESS_KEY_ID": self.access_key_id,
                "AWS_SECRET_ACCESS_KEY": self.secret_access_key, "AWS_DEFAULT_REGION": self.region}

    def storage_options(self) -> dict:
        """fsspec/s3fs keyword arguments, for a caller that must not depend on the environment."""
        return {"endpoint_url": self.endpoint_url, "key": self.access_key_id, "secret": self.secret_access_key,
                "client_kwargs": {"region_name": self.region}}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key_id,
                            aws_secret_access_key=self.secret_access_key, region_name=self.region)


@contextmanager
def s3_server(*, bucket: str = "ct-stack", start_timeout: float = 30.0) -> Iterator[S3Server]:
    """Start moto on a free port, create ``bucket``, yield the S3Server; stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="ct_s3_"))
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    server = ServerProcess("moto", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
                           workdir / "moto.log", cwd=workdir)
    try:
        server.start()
        # Any HTTP reply counts: moto answers an unsigned GET / with an error document.
        server.wait_until_ready(lambda: http_status(endpoint) is not None, start_timeout, f"answer HTTP on {endpoint}")
        s3 = S3Server(endpoint, bucket, FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, REGION, server.pid)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

