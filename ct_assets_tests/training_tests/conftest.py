from __future__ import annotations

import pytest

from ct_assets_tests.training_tests.pipes_world import trained_home
from ct_assets_tests.training_tests.resume_worker import TRAINING


@pytest.fixture
def trained_inputs(tmp_path, sim_base_dir):
    """The model settings' short training (a few dozen steps)."""
    with trained_home(tmp_path, sim_base_dir) as world:
        yield world


@pytest.fixture
def killable_inputs(tmp_path, sim_base_dir):
    """A training long enough to be killed mid-way (hundreds of steps, a checkpoint every 2)."""
    with trained_home(tmp_path, sim_base_dir, **TRAINING) as world:
        yield world
