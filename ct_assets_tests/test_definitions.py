"""The code location loads, and its asset graph matches the reviewed snapshot.

The snapshot records asset keys, groups, partitions and checks; `make snapshot`
refreshes it after an intended change, so an accidental change shows up in review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dagster import Definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def _graph(defs: Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "blocking_checks": sorted(
                c.name for c in node.check_keys if graph.get_check_spec(c).blocking
            ),
        }
    return {"assets": assets}


def test_definitions_validate_loadable():
    from ct_assets.definitions import defs

    Definitions.validate_loadable(defs)


def test_asset_graph_snapshot():
    from ct_assets.definitions import defs

    current = _graph(defs)
    if os.environ.get("CT_UPDATE_SNAPSHOT"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), "no snapshot yet: run `make snapshot`"
    assert current == json.loads(SNAPSHOT.read_text()), "asset graph changed: review, then `make snapshot`"


def test_every_check_is_described_and_evaluated_per_partition():
    """The UI shows each check per day with what it means (no "Partition —", no blank)."""
    from ct_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    specs = [graph.get_check_spec(c) for key in graph.get_all_asset_keys() for c in graph.get(key).check_keys]
    assert len(specs) >= 11
    undescribed = [s.key.to_user_string() for s in specs if not (s.description or "").strip()]
    unpartitioned = [s.key.to_user_string() for s in specs if s.partitions_def is None]
    assert (undescribed, unpartitioned) == ([], [])
