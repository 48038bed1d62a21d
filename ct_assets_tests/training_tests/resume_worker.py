"""The resume-after-SIGKILL test's worker: one real Dagster run of the training chain.

Run as ``python -m ct_assets_tests.training_tests.resume_worker`` with CT_HOME and
RESUME_BASE_DIR set; the test SIGKILLs its process group (this run and the Pipes training
process lora_adapter started) once a checkpoint is on disk. ``training_chain``
is module level so that ``reconstructable`` (which ``execute_job`` and re-execution from
failure need) can rebuild the same job in any process from the same two variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import (
    DagsterInstance,
    Definitions,
    JobDefinition,
    define_asset_job,
    execute_job,
    reconstructable,
)

from ct_assets.core.home import CT_HOME_ENV, CtHome
from ct_assets.definitions import build_definitions
from ct_assets.orchestration.run_sweep import process_tags
from ct_assets_tests.helpers import day, model_settings

BASE_DIR_ENV = "RESUME_BASE_DIR"
PARTITION = day(4)
CHAIN = ["training_dataset", "lora_adapter"]
# In one process: the kill then takes the run worker and the step (and its training process) together.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
# Long enough to be killed mid-training whatever the machine's speed (a few hundred
# steps on the tiny BERT, a checkpoint every 2), no early stop, few evaluations.
TRAINING = {
    "training.batch_size": 4,
    "training.max_epochs": 3,
    "training.checkpoint_every_steps": 2,
    "training.eval_every_steps": 1000,
    "training.patience": 1000,
}


def home() -> CtHome:
    return CtHome(Path(os.environ[CT_HOME_ENV])).ensure()


def settings():
    return model_settings(Path(os.environ[BASE_DIR_ENV]), **TRAINING)


def training_chain() -> JobDefinition:
    # A named job: the implicit asset job's reserved name cannot be reconstructed.
    job = define_asset_job("training_chain", selection=CHAIN)
    return Definitions.merge(build_definitions(settings(), home()), Definitions(jobs=[job])).resolve_job_def(job.name)


def open_instance() -> DagsterInstance:
    return DagsterInstance.from_config(str(home().dagster))


def main() -> None:
    with open_instance() as instance:
        # Tagged with this process like materialize_range's runs, so sweep_dead_runs knows it died.
        execute_job(reconstructable(training_chain), instance, run_config=IN_PROCESS,
                    tags={"dagster/partition": PARTITION, **process_tags()}, raise_on_error=True)


if __name__ == "__main__":
    main()
