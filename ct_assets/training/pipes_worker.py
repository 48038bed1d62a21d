"""The training process lora_adapter launches through Dagster Pipes:
``python -m ct_assets.training.pipes_worker`` (a subprocess, or the command of a pod).

It speaks only ``dagster_pipes`` (no Dagster: a pod image needs the training stack, not
the orchestrator). Everything run-specific comes in the Pipes extras (training.job
defines them); progress goes back as Pipes log lines, and the outcome as one custom
message. The exit status says only whether an outcome was sent: a reported error exits 0
too, and the asset raises it; a crash or a kill sends nothing and exits non-zero, so the
step fails and its RetryPolicy starts a new process, which resumes from the checkpoint.
"""

from __future__ import annotations

import os
import sys

from dagster_pipes import open_dagster_pipes

from ct_assets.core.profile import MLFLOW_TRACKING_URI_ENV

PID_FILE = "worker.pid"  # in the checkpoint dir: the process training that partition now


def main() -> int:
    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        ckpt = extras["checkpoint_dir"]
        os.makedirs(ckpt, exist_ok=True)
        # Written before the slow imports below: whoever must stop this training (a test,
        # an operator) finds the process at once.
        with open(os.path.join(ckpt, PID_FILE), "w", encoding="utf-8") as f:
            f.write(str(os.getpid()))
        pipes.log.info(f"training {extras['partition']} in process {os.getpid()}; checkpoints in {ckpt}")
        # Imported here, after the pipes are open: torch, peft and mlflow take seconds.
        from ct_assets.training import job

        try:
            uri = os.environ.get(MLFLOW_TRACKING_URI_ENV)
            if not uri:
                raise RuntimeError(f"{MLFLOW_TRACKING_URI_ENV} is not set in the training process's environment")
            result = job.run_training(job.TrainingJob.from_extras(extras), uri, pipes.log.info)
        except Exception as err:  # noqa: BLE001 -- reported whole to the asset, which raises it
            pipes.report_custom_message(job.error_message(err))
            return 0
        pipes.report_custom_message({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
