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


def test_the_config_rendered_from_terraform_outputs_validates_and_carries_them(tmp_path):
    """infra/ray/render_cluster.py fills `terraform output -json`'s ray_cluster into the config."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("render_cluster", CONFIG.parent / "render_cluster.py")
    render_cluster = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_cluster)
    profile = "arn:aws:iam::210987654321:instance-profile/actrec-prod-ray-{}"
    outputs = {
        "store_uri": {"sensitive": False, "type": "string", "value": "s3://actrec-prod-store-1/actrec"},
        "ray_cluster": {
            "sensitive": False,
            "type": ["object", {}],
            "value": {
                "cluster_name": "actrec-batch",
                "region": "eu-west-1",
                "availability_zones": ["eu-west-1a", "eu-west-1b"],
                "subnet_ids": ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f"],
                "security_group_id": "sg-0123456789abcdef0",
                "head_instance_profile_arn": profile.format("head"),
                "worker_instance_profile_arn": profile.format("worker"),
            },
        },
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    out = tmp_path / "cluster-aws.generated.yaml"
    assert render_cluster.main(["--outputs", str(tmp_path / "outputs.json"), "--out", str(out)]) == 0

    cfg = yaml.safe_load(out.read_text())
    prepared = _validate(cfg)
    assert prepared["provider"]["region"] == "eu-west-1"
    assert prepared["provider"]["availability_zone"] == "eu-west-1a,eu-west-1b"
    assert prepared["provider"]["use_internal_ips"] is True
    head = cfg["head_node_type"]
    for name, t in cfg["available_node_types"].items():
        nc = t["node_config"]
        assert nc["IamInstanceProfile"]["Arn"] == profile.format("head" if name == head else "worker"), name
        assert nc["SubnetIds"] == ["subnet-0aaa1111bbbb2222c", "subnet-0ddd3333eeee4444f"]
        assert nc["SecurityGroupIds"] == ["sg-0123456789abcdef0"]
    # Nothing else changed: the node types, their instance types and markets are the template's.
    template = _load()
    assert cfg["available_node_types"].keys() == template["available_node_types"].keys()
    for name, t in template["available_node_types"].items():
        assert (
            cfg["available_node_types"][name]["node_config"]["InstanceType"]
            == t["node_config"]["InstanceType"]
        )
        assert cfg["available_node_types"][name]["resources"] == t["resources"]


def test_every_port_ray_would_pick_at_random_is_pinned_for_the_security_group():
    cfg = _load()
    for cmd in (cfg["head_start_ray_commands"][-1], cfg["worker_start_ray_commands"][-1]):
        for flag in (
            "--object-manager-port=8076",
            "--node-manager-port=8077",
            "--dashboard-agent-grpc-port=8078",
        ):
            assert flag in cmd, (flag, cmd)
        assert "--runtime-env-agent-port=8079" in cmd and "--metrics-export-port=8080" in cmd
