"""Real servers on localhost for trying and testing CT_PROFILE=server: a throwaway
Postgres cluster, moto as the S3-protocol server, and an MLflow tracking server on both.

Plain Python (no Dagster): the tests' fixtures and the event-log benchmark use it, and
``python -m ct_assets.stack`` starts it for a person to point a shell at.
"""

from ct_assets.stack.mlflow_server import MlflowServer, mlflow_server
from ct_assets.stack.postgres import PostgresNotInstalled, PostgresServer, postgres_server
from ct_assets.stack.process import ServerStartError
from ct_assets.stack.s3 import S3Server, s3_server
from ct_assets.stack.stack import ServerStack, server_stack

__all__ = ["MlflowServer", "PostgresNotInstalled", "PostgresServer", "S3Server", "ServerStack", "ServerStartError",
           "mlflow_server", "postgres_server", "s3_server", "server_stack"]
