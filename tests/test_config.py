"""Settings: precedence, validation (one line naming the setting and the fix), secret masking."""

from __future__ import annotations

import datetime as dt

import pytest

from actrec_batch.config import load_settings, parse_logical_date, redact_url, replace
from actrec_batch.errors import ConfigError


def test_defaults_match_contracts():
    s = load_settings({}, env={})
    assert s.store == "./.actrec/store"
    assert s.warehouse_url == "duckdb:///./.actrec/warehouse.duckdb"
    assert s.ray_address is None
    assert all(src == "default" for src in s.sources.values())


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    cfg = tmp_path / "actrec.yaml"
    cfg.write_text("store: /from/file\nprobe_workers: 3\nlog_level: debug\n")
    env = {"ACTREC_STORE": "s3://env-bucket/x", "ACTREC_PROBE_WORKERS": "5", "ACTREC_CONFIG": str(cfg)}
    s = load_settings({"store": "/from/flag"}, env=env)
    assert s.store == "/from/flag" and s.sources["store"] == "flag"
    assert s.probe_workers == 5 and s.sources["probe_workers"] == "env"
    assert s.log_level == "DEBUG" and s.sources["log_level"] == "file"
    assert s.content_id == "sha256" and s.sources["content_id"] == "default"
    s2 = load_settings({}, env={"ACTREC_STORE": "s3://env-bucket/x/"}, config_file=str(cfg))
    assert s2.store == "s3://env-bucket/x"


def test_settings_are_frozen():
    s = load_settings({}, env={})
    with pytest.raises(AttributeError):
        s.store = "/elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({"store": "ftp://host/x"}, {}, "--store / ACTREC_STORE"),
        ({"store": "s3://Bad_Bucket/x"}, {}, "not a valid S3 bucket name"),
        ({"store": "file://relative/path"}, {}, "absolute path"),
        ({}, {"ACTREC_WAREHOUSE_URL": "mysql://u:p@h/db"}, "--warehouse / ACTREC_WAREHOUSE_URL"),
        ({"ray_address": "not an address"}, {}, "--ray-address / ACTREC_RAY_ADDRESS"),
        ({}, {"ACTREC_PROBE_WORKERS": "0"}, "between 1 and 256"),
        ({}, {"ACTREC_PROBE_WORKERS": "many"}, "whole number"),
        ({"content_id": "md5"}, {}, "choose one of sha256, fast"),
        ({"log_level": "LOUD"}, {}, "DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_bad_values_name_the_setting_and_the_fix(flags, env, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(flags, env=env)
    msg = str(err.value)
    assert needle in msg
    assert "Fix:" in msg
    assert "\n" not in msg


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_settings({}, env={}, config_file=str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings({}, env={}, config_file=str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("stroe: /typo\n")
    with pytest.raises(ConfigError, match="unknown key.*stroe"):
        load_settings({}, env={}, config_file=str(unknown))


def test_secrets_never_in_repr_or_errors():
    url = "postgresql+psycopg://alice:s3cr3t-pw@db.internal:5432/actrec"
    s = load_settings({"warehouse_url": url}, env={})
    assert s.warehouse_url == url
    assert "s3cr3t-pw" not in repr(s)
    assert "s3cr3t-pw" not in str(s.redacted())
    assert "alice:***@db.internal" in repr(s)
    with pytest.raises(ConfigError) as err:
        load_settings({"warehouse_url": "mysql://alice:s3cr3t-pw@h/db"}, env={})
    assert "s3cr3t-pw" not in str(err.value)
    assert redact_url("duckdb:///x.duckdb") == "duckdb:///x.duckdb"


def test_replace_validates():
    s = load_settings({}, env={})
    assert replace(s, probe_workers="4").probe_workers == 4
    with pytest.raises(ConfigError):
        replace(s, store="gopher://x")


def test_parse_logical_date():
    assert parse_logical_date("2026-11-24") == dt.date(2026, 11, 24)
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_logical_date("2026-13-01")
    with pytest.raises(ConfigError, match="--from"):
        parse_logical_date("yesterday", setting="--from")


def test_each_setting_is_declared_once_and_everything_derives_from_it():
    import dataclasses

    from actrec_batch.config import GROUPS, SETTING_NAMES, SETTINGS, Settings

    fields = [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]
    assert fields == list(SETTING_NAMES)
    assert len({s.flag for s in SETTINGS}) == len(SETTINGS)
    for spec in SETTINGS:
        assert spec.env == f"ACTREC_{spec.name.upper()}"
        assert spec.group in GROUPS and spec.help and spec.fix
        assert spec.parse(spec, spec.default) == spec.default or spec.default is None
    assert {s.group for s in SETTINGS} == set(GROUPS)
    s = load_settings({}, env={})
    assert {k: getattr(s, k) for k in SETTING_NAMES} == {spec.name: spec.default for spec in SETTINGS}


def test_runner_setting():
    assert load_settings({}, env={}).runner == "ray"
    s = load_settings({}, env={"ACTREC_RUNNER": "LOCAL"})
    assert s.runner == "local" and s.sources["runner"] == "env"
    with pytest.raises(ConfigError, match=r"--runner / ACTREC_RUNNER\): choose one of ray, local\. Fix:"):
        load_settings({"runner": "spark"}, env={})


def test_setting_error_names_flag_env_and_fix():
    from actrec_batch.config import setting_error

    err = setting_error("actor_gpus", 2.0, "the Ray cluster has 0 GPUs", fix="use 0 for CPU actors, or auto")
    assert str(err) == (
        "bad setting actor_gpus = 2.0 (--actor-gpus / ACTREC_ACTOR_GPUS): the Ray cluster has 0 GPUs. "
        "Fix: use 0 for CPU actors, or auto"
    )


def test_settings_reference_table_lists_every_setting_by_group():
    from actrec_batch.config import GROUPS, SETTINGS, settings_reference_markdown

    md = settings_reference_markdown()
    for spec in SETTINGS:
        [row] = [ln for ln in md.splitlines() if ln.startswith(f"| `{spec.name}` |")]
        assert f"`{spec.flag}`" in row and f"`{spec.env}`" in row and f"`{spec.default_text()}`" in row
    positions = [md.index(f"**{g}**") for g in GROUPS]
    assert positions == sorted(positions)


def test_generated_docs_are_current():
    """README.md's settings table and docs/reference.md's settings and columns tables are generated;
    regenerate them with `python -m actrec_batch.docs`."""
    from actrec_batch import docs

    for path, names in docs.FILES.items():
        assert not docs.stale_blocks(path, names, write=False), (
            f"{path.name}: generated blocks are stale: run python -m actrec_batch.docs"
        )
