"""Every run tells its story: ``ct/trigger`` and ``ct/reason`` on the run itself.

Runs our sensors, schedule, jobs and CLI start are tagged when they are requested. A run a
person launches from the UI (a materialization, a backfill) or Dagster's automation sensor
requests arrives without them, so the first asset of the run adds them (``run_story`` says
what to write), and the Runs page can be filtered by trigger for every run.
"""

from __future__ import annotations

from ct_assets.core.schema import REASON_TAG, TRIGGER_TAG, run_story


def tag_run_story(context) -> tuple[str, str]:
    """The run's (trigger, reason), written onto the run when it did not carry them."""
    tags = context.run.tags
    trigger, reason = run_story(tags)
    if TRIGGER_TAG not in tags or REASON_TAG not in tags:
        context.instance.add_run_tags(context.run_id, {TRIGGER_TAG: trigger, REASON_TAG: reason})
    return trigger, reason
