"""What makes a human decision on a version valid (pure): checked at the start of the
approve_model run, so a bad launchpad entry ends in one line that says what to fix."""

from __future__ import annotations

from collections.abc import Sequence

WHERE_VERSIONS_ARE = ("`ct status` lists the registered versions with their gate verdicts, and each eval_report "
                      "materialization shows its `model_version`")


def approval_problem(version: int, reviewer: str, registered: Sequence[int], model_name: str) -> str | None:
    """Why this approval cannot be recorded, in one line; None when it can."""
    if version < 1:
        return f"version must be a registered model version (>= 1), got {version}: {WHERE_VERSIONS_ARE}"
    if not reviewer.strip():
        return "reviewer must name who decides (it is recorded with the decision); got an empty reviewer"
    if version not in registered:
        known = ", ".join(str(v) for v in registered) or "none yet (train a model first)"
        return f"version {version} is not registered in {model_name}; registered versions: {known}"
    return None


def status_rows(infos, aliases: dict[str, int], approvals: dict[int, dict | None]) -> list[dict]:
    """One row per registered version for `ct status`: what a reviewer needs to decide."""
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    rows = []
    for info in infos:
        evaluation, approval = info.evaluation, approvals.get(info.version)
        try:
            window = "{}..{}".format(*info.window)
        except KeyError:
            window = "-"
        rows.append({
            "version": info.version, "aliases": ",".join(sorted(by_version.get(info.version, []))) or "-",
            "window": window, "trigger": info.trigger,
            "gate": "-" if evaluation is None else ("passed" if evaluation.passed else "failed"),
            "approval": f"{approval['decision']} by {approval['reviewer']}" if approval else "-",
            "rolled_back": "yes" if info.rolled_back else "-",
            # A canary that answered users worse (canary_report): not re-promoted automatically.
            "withdrawn": f"by {info.withdrawal['by']}" if info.withdrawal else "-",
        })
    return rows
