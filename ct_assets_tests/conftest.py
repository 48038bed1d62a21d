"""Suite-wide isolation: every test run writes only under a temporary CT_HOME.

Set before any ct_assets module is imported, so ``ct_assets.definitions`` (which
builds its Definitions at import, as a code location must) never touches the repo.
"""

from __future__ import annotations

import os
import tempfile

_SESSION_HOME = tempfile.mkdtemp(prefix="ct_home_tests_")
os.environ.setdefault("CT_HOME", _SESSION_HOME)
os.environ["DAGSTER_HOME"] = os.path.join(os.environ["CT_HOME"], "dagster")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

pytest_plugins = ["ct_assets_tests.server_fixtures"]


@pytest.fixture(scope="session")
def sim_base_dir(tmp_path_factory):
    """A tiny random BERT whose WordPiece vocabulary is trained on simulator text."""
    from ct_assets.training.base_model import build_tiny_model
    from ct_assets_tests.helpers import simulator_texts

    return build_tiny_model(tmp_path_factory.mktemp("tiny_sim_base"), simulator_texts(), vocab_size=800)


# The toy classification task and the tiny base the model tests share (training,
# evaluation, registry): imported here so every test folder sees the same fixtures.
from ct_assets_tests.toy_text import tiny_base_dir, tiny_peft, toy_data  # noqa: E402,F401
