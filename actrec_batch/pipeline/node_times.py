"""When each Ray node of a run joined and left: the node-hours the cloud bills for the run.

The run looks at ``ray.nodes()`` when it starts, at every re-plan (every 2 s, from the
scheduler) and when it ends. A node's ``joined_s`` is the first look that found it alive,
``left_s`` the first look that found it dead or gone (else the last look): seconds from the run's
first look, so a node is paid from ``joined_s`` to ``left_s`` as far as this run is concerned
(a node up before the run started is the earlier run's, or idle, cost). The error is at most the
re-plan period per join and per leave.

What a node is, comes from the node itself, never guessed from its shape (a g5.xlarge and a
g6.xlarge both have 4 CPUs and 1 GPU):

* ``instance_type``: the node label :data:`INSTANCE_TYPE_LABEL`, which each node type of
  infra/ray/cluster-aws.yaml sets (``labels: {instance-type: g5.xlarge}``); None without it (a
  local Ray, a test cluster), and the cost ledger then prices the node *as* the configured type.
* ``market``: ``spot`` when the node carries the custom resource ``spot`` (the cluster config sets
  it on every spot node type) or Ray's label ``ray.io/market-type`` says spot; else ``on_demand``.

Ray-free: it takes ``ray.nodes()``'s dicts, so it is tested without a cluster.
"""

from __future__ import annotations

from typing import Any

INSTANCE_TYPE_LABEL = "instance-type"
MARKET_LABEL = "ray.io/market-type"


class NodeTimes:
    """The nodes seen so far, by node id, with their join and leave times."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.last: float = 0.0
        self.seen: dict[str, dict[str, Any]] = {}

    def observe(self, nodes: list[dict[str, Any]], now: float) -> None:
        """One look at the cluster (``ray.nodes()``) at monotonic time ``now`` (seconds)."""
        if self.t0 is None:
            self.t0 = now
        t = now - self.t0
        self.last = t
        present = set()
        for n in nodes:
            node_id = n.get("NodeID")
            alive = bool(n.get("Alive"))
            if not node_id:
                continue
            present.add(node_id)
            entry = self.seen.get(node_id)
            if entry is None:
                if not alive:
                    continue  # dead before the run looked: not the run's
                entry = self.seen[node_id] = _describe(n, t)
            if not alive and entry["left_s"] is None:
                entry["left_s"] = round(t, 3)
        for node_id, entry in self.seen.items():
            if node_id not in present and entry["left_s"] is None:
                entry["left_s"] = round(t, 3)

    def to_json(self, now: float) -> list[dict[str, Any]]:
        """Every node seen, with ``joined_s``, ``left_s`` (the last look for a node still up), ``alive``
        and ``held_s``."""
        out = []
        for entry in self.seen.values():
            left = entry["left_s"]
            end = left if left is not None else round(self.last, 3)
            out.append(
                {**entry, "alive": left is None, "left_s": end, "held_s": round(end - entry["joined_s"], 3)}
            )
        return out


def _describe(n: dict[str, Any], t: float) -> dict[str, Any]:
    resources = n.get("Resources", {}) or {}
    labels = n.get("Labels", {}) or {}
    spot = "spot" in resources or str(labels.get(MARKET_LABEL, "")).lower() == "spot"
    return {
        "node_id": n["NodeID"],
        "address": n.get("NodeManagerAddress"),
        "resources": {k: v for k, v in resources.items() if not k.startswith("node:")},
        "instance_type": labels.get(INSTANCE_TYPE_LABEL),
        # a node started with the custom resource "spot" is billed at the spot price
        "market": "spot" if spot else "on_demand",
        "joined_s": round(t, 3),
        "left_s": None,
    }
