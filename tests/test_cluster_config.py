"""infra/ray/cluster-aws.yaml is a config Ray's cluster launcher accepts: validated offline against
Ray's cluster config schema the way ``ray up`` does (``prepare_config`` fills in the AWS provider's
defaults without the network, then ``validate_config``), and shaped as the deployment needs it."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[1] / "infra" / "ray" / "cluster-aws.yaml"


def _load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def _validate(cfg: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(cfg))
    validate_config(prepared)
    return prepared


def test_the_cluster_config_validates_against_rays_schema():
    prepared = _validate(_load())
    assert prepared["provider"]["type"] == "aws"


def test_an_unknown_key_in_a_node_type_is_rejected():
    from jsonschema.exceptions import ValidationError

    cfg = _load()
    cfg["available_node_types"]["cpu_decode_c7i"]["min_worker"] = 0  # a typo
    with pytest.raises(ValidationError):
        _validate(cfg)


def test_an_on_demand_head_spot_gpu_workers_over_several_types_and_cpu_decode_workers():
    cfg = _load()
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert "InstanceMarketOptions" not in head["node_config"]  # on demand
    assert head["resources"] == {"CPU": 0}  # no decode or inference work on the head
    gpu = {name: t for name, t in types.items() if t["resources"].get("GPU")}
    instance_types = {t["node_config"]["InstanceType"] for t in gpu.values()}
    assert len(instance_types) >= 3 and {i.split(".")[0] for i in instance_types} >= {"g5", "g6"}
    for t in gpu.values():
        assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert t["resources"]["spot"] == 1 and t["min_workers"] == 0 and t["max_workers"] >= 1
    cpu = {name: t for name, t in types.items() if name != cfg["head_node_type"] and name not in gpu}
    assert cpu and all(re.match(r"c[67]i\.", t["node_config"]["InstanceType"]) for t in cpu.values())
    assert all(t["min_workers"] == 0 for t in cpu.values())


def test_nodes_install_the_wheel_pinned_and_use_an_instance_profile_not_keys():
    cfg = _load()
    text = CONFIG.read_text()
    assert any("scripts/install.sh worker" in c for c in cfg["setup_commands"])
    assert "./constraints.txt" in cfg["file_mounts"].values() and "./dist" in cfg["file_mounts"].values()
    for name, t in cfg["available_node_types"].items():
        assert ":instance-profile/" in t["node_config"]["IamInstanceProfile"]["Arn"], name
    assert not re.search(
        r"AKIA[0-9A-Z]{16}|aws_secret_access_key|AWS_SECRET_ACCESS_KEY|ssh_private_key", text
    )
