"""The `actrec` console script: help, exit codes, one-line errors (run as a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "actrec_batch", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("synth", "discover", "demo", "config"):
        assert cmd in out.stdout
    for cmd in ("synth", "discover", "run", "infer", "demo", "config"):
        sub = run_cli(cmd, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "--store" in sub.stdout


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["discover", "--date", "2026-13-01"], {}, "--date"),
        (["discover", "--date", "2026-11-24", "--store", "ftp://x"], {}, "ACTREC_STORE"),
        (["discover", "--date", "2026-11-24"], {"ACTREC_CONTENT_ID": "crc"}, "ACTREC_CONTENT_ID"),
        (["synth", "--date", "2026-11-24", "--cameras", "0"], {}, "--cameras"),
        (["synth", "--date", "2026-11-24", "--codec", "divx"], {}, "--codec"),
        (["synth"], {}, "--date"),
        (["discover", "--date", "2026-11-24", "--no-such-flag"], {}, "--no-such-flag"),
        (["run", "--date", "2026-11-24", "--actor-gpus", "lots"], {}, "--actor-gpus"),
        (["infer", "--date", "2026-11-24"], {"ACTREC_SEGMENT_S": "0"}, "ACTREC_SEGMENT_S"),
        (["infer", "--date", "2026-11-24", "--ray-address", "http://head:8265"], {}, "ray job submit"),
        (["cost"], {}, "--run-id"),
        (["cost", "--date", "2026-11-24"], {}, "actrec run --date 2026-11-24"),
        (["cost", "--run-id", "nightly-7"], {}, "--run-id"),
        (["cost", "--run-id", "2026-11-24-abc"], {}, "2026-11-24-abc"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, env, needle, tmp_path):
    out = run_cli(*args, env=env, cwd=tmp_path)
    assert out.returncode == 2, out
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]
    assert "Traceback" not in out.stderr
    assert "Fix:" in lines[0]


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    """`actrec ... | head`: the pipe closes before the output is written; exit 0, nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actrec_batch", "config", "--store", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_config_shows_sources_and_masks_secrets(tmp_path):
    out = run_cli(
        "config",
        "--warehouse",
        "postgresql+psycopg://u:topsecret@127.0.0.1/db",
        env={"ACTREC_PROBE_WORKERS": "3"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "topsecret" not in out.stdout + out.stderr
    assert "probe_workers = 3  (env)" in out.stdout
    assert "warehouse_url = 'postgresql+psycopg://u:***@127.0.0.1/db'  (flag)" in out.stdout


def test_synth_then_discover_end_to_end(tmp_path):
    """The documented two-step: `actrec synth` writes videos + sidecars; `actrec discover` manifests them."""
    env = {"ACTREC_STORE": str(tmp_path / "store")}
    synth = run_cli(
        "synth", "--date", "2026-11-24", "--cameras", "2", "--minutes", "0.2", "--json", "--quiet", env=env
    )
    assert synth.returncode == 0, synth.stderr
    report = json.loads(synth.stdout.strip().splitlines()[-1])
    assert len(report["videos"]) == 2
    for key in report["videos"]:
        assert key.startswith("footage/date=2026-11-24/camera=cam-0")
        sidecar = json.loads((tmp_path / "store" / f"{key}.labels.json").read_text())
        assert set(sidecar) >= {"video", "fps", "duration_s", "events"}
        assert sidecar["video"] == key.rsplit("/", 1)[-1]
    found = run_cli("discover", "--date", "2026-11-24", "--json", env=env)
    assert found.returncode == 0, found.stderr
    out = json.loads(found.stdout.strip().splitlines()[-1])
    assert (out["videos_discovered"], out["videos_manifested"], out["videos_quarantined"]) == (2, 2, 0)


def test_ray_entrypoint_is_actrec_infer(tmp_path):
    script = os.path.join(os.path.dirname(__file__), "..", "ray_jobs", "nightly_inference.py")
    ok = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "--segment-s" in ok.stdout and "--discover" in ok.stdout
    missing = subprocess.run(
        [sys.executable, script, "--date", "2026-11-24", "--store", str(tmp_path / "empty")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    [line] = [ln for ln in missing.stderr.splitlines() if ln.strip()]
    assert "no manifest for 2026-11-24" in line and "actrec discover --date 2026-11-24" in line


def test_main_in_process_logs_to_the_current_stderr_after_its_stream_is_closed(tmp_path, monkeypatch):
    """A caller that runs main() with a swapped sys.stderr and then closes it (pytest's capture, a
    notebook) must not leave a handler on the closed stream: later log lines go to the new stderr."""
    import io
    import logging

    from actrec_batch.cli import main

    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    assert main(["config", "--store", str(tmp_path)]) == 0
    swapped.close()
    later = io.StringIO()
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("actrec_batch.test").warning("after the swapped stream closed")
    assert "after the swapped stream closed" in later.getvalue()
    assert "Logging error" not in later.getvalue()


def test_help_shows_defaults_env_vars_and_only_the_groups_a_command_uses():
    search = run_cli("search", "--help")
    assert search.returncode == 0, search.stderr
    assert "--warehouse" in search.stdout and "ACTREC_WAREHOUSE_URL" in search.stdout
    assert "--segment-s" not in search.stdout and "--cpu-hour-usd" not in search.stdout
    infer = run_cli("infer", "--help")
    text = " ".join(infer.stdout.split())
    assert "--runner {ray,local}" in text and "(default: ray; env ACTREC_RUNNER)" in text
    assert "(default: 300.0; env ACTREC_SEGMENT_S)" in text
    assert "--warehouse" in text  # infer --publish goes on to publish into the warehouse
    run = " ".join(run_cli("run", "--help").stdout.split())
    for group in ("store", "warehouse", "ray", "decode", "pricing"):
        assert f"{group} settings:" in run


def test_a_setting_flag_a_command_does_not_show_is_still_accepted(tmp_path):
    """Like its env var, every setting flag is accepted by every command (scripts pass a full set)."""
    out = run_cli("warehouse", "--help", "--segment-s", "60", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_infer_local_is_gone_and_names_its_replacement(tmp_path):
    out = run_cli("infer-local", "--date", "2026-11-24", "--json", cwd=tmp_path)
    assert out.returncode == 2
    [line] = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "actrec infer --runner local" in line and "Fix:" in line


def test_config_groups_the_settings(tmp_path):
    out = run_cli("config", "--runner", "local", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "# store: object store"
    assert "runner = 'local'  (flag)  --runner / ACTREC_RUNNER" in lines
    assert lines.index("# ray: Ray: where and how inference runs") < lines.index(
        "runner = 'local'  (flag)  --runner / ACTREC_RUNNER"
    )


def test_tables_are_rich_tables_csv_and_json_unchanged(capsys):
    from actrec_batch.cli.base import print_rows

    rows = [{"a": 1.23456, "b": "[x]"}, {"a": None, "b": "y"}]
    print_rows(rows, ["a", "b"], "table")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["a", "b"] and set(table[1]) <= {"─", " "}
    assert table[2].split() == ["1.235", "[x]"] and table[-1] == "(2 rows)"
    print_rows(rows, ["a", "b"], "csv")
    assert capsys.readouterr().out.splitlines() == ["a,b", "1.23456,[x]", ",y"]
    print_rows(rows, ["a", "b"], "json")
    assert json.loads(capsys.readouterr().out) == rows


def test_synth_flags_come_from_synth_params():
    import dataclasses

    from actrec_batch.cli import build_parser
    from actrec_batch.synth import SynthParams

    parser = build_parser()
    args = parser.parse_args(["synth", "--date", "2026-11-24"])
    assert {f.name: getattr(args, f.name) for f in dataclasses.fields(SynthParams)} == SynthParams().to_json()
    demo = parser.parse_args(["demo", "--cameras", "3"])
    assert (demo.cameras, demo.minutes) == (3, 2.0)
