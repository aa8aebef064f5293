"""The published-events suite: every expectation passes on good events and fails on its own breakage."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from actrec_batch.errors import ValidationFailed
from actrec_batch.expectations import EVENT_COLUMNS, events_expectations, validate_events, validate_manifest

DATE = dt.date(2026, 11, 1)
LABELS = ("fall", "walk", "wave")
T0 = pd.Timestamp("2026-11-01T02:00:00", tz="UTC")


def events(n: int = 4) -> pd.DataFrame:
    """``n`` valid events of two videos and two labels; the last row's video has no creation time."""
    start = np.arange(n, dtype=float) * 2.0
    end = start + 1.5
    has_ts = np.arange(n) < n - 1
    return pd.DataFrame(
        {
            "event_id": [f"ev-{i:06d}" for i in range(n)],
            "video_id": [f"vid-{i % 2}" for i in range(n)],
            "video_key": [f"footage/date={DATE}/camera=cam-01/v{i % 2}.mp4" for i in range(n)],
            "uri": [f"s3://bucket/footage/date={DATE}/camera=cam-01/v{i % 2}.mp4" for i in range(n)],
            "camera_id": "cam-01",
            "logical_date": DATE.isoformat(),
            "label": ["fall" if i % 2 else "walk" for i in range(n)],
            "start_s": start,
            "end_s": end,
            "start_ts": pd.Series(T0 + pd.to_timedelta(start, unit="s")).where(has_ts),
            "end_ts": pd.Series(T0 + pd.to_timedelta(end, unit="s")).where(has_ts),
            "confidence": np.linspace(0.0, 1.0, n),
            "model_name": "x3d-s",
            "model_version": "2026.10.1",
            "model_sha256": "a" * 64,
            "extractor_id": "frames/v1",
            "content_id": "b" * 64,
            "code_version": "0.4.0",
            "run_id": "nightly__2026-11-01",
            "end_video_id": [f"vid-{i % 2}" for i in range(n)],
            "end_offset_s": end,
            "video_duration_s": end.max(),
            "end_video_duration_s": end.max(),
        }
    )


def _page_text(path) -> str:
    """The visible text of a Data Docs page, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text()).split())


def test_event_columns_match_the_suite_schema():
    assert list(events().columns) == list(EVENT_COLUMNS)
    assert len(events_expectations(DATE, LABELS)) > 20


def test_valid_events_pass_and_write_data_docs(tmp_path):
    df = events()
    assert df["start_ts"].isna().sum() == 1
    result = validate_events(df, DATE, LABELS, docs_dir=tmp_path / "docs")
    assert result.success and not result.failed
    assert result.to_dict()["docs_index"] == result.docs_index
    index = tmp_path / "docs" / "index.html"
    assert result.docs_index == str(index.resolve())
    assert "events" in _page_text(index)
    pages = list((tmp_path / "docs" / "validations" / "events").rglob("*.html"))
    assert len(pages) == 1
    assert pages[0].relative_to(tmp_path / "docs").as_posix() in index.read_text()  # linked from the index
    assert DATE.isoformat() in pages[0].relative_to(tmp_path).as_posix()  # the run is named by date


def test_valid_events_pass_without_docs():
    result = validate_events(events(), DATE, LABELS)
    assert result.success and result.docs_index is None


def test_an_event_spanning_files_passes_with_its_end_in_the_next_video():
    df = events()
    # row 3 starts 6.0 s into vid-1 (7.5 s long) and ends 2.0 s into vid-0: end_s is past vid-1's end
    df.loc[3, ["end_s", "end_video_id", "end_offset_s"]] = [9.5, "vid-0", 2.0]
    assert validate_events(df, DATE, LABELS).success
    df.loc[3, "end_offset_s"] = 7.6  # but it must end within the video it ends in
    with pytest.raises(ValidationFailed, match="end_video_duration_s, end_offset_s"):
        validate_events(df, DATE, LABELS)


def _set(column, row, value):
    """A breakage: ``df[column][row] = value``."""

    def breaks(df):
        # pandas 3 refuses a str in a float64 column (or an int in a str one); an object column takes any.
        df = df if isinstance(value, float) else df.astype({column: object})
        df.loc[row, column] = value
        return df

    return breaks


BROKEN = {
    "confidence_above_one": (_set("confidence", 1, 1.7), "expect_column_values_to_be_between", "confidence"),
    "negative_start": (_set("start_s", 0, -0.5), "expect_column_values_to_be_between", "start_s"),
    "end_before_start": (
        _set("end_s", 2, 4.0),  # start_s is 4.0
        "expect_column_pair_values_a_to_be_greater_than_b",
        "(end_s, start_s)",
    ),
    "end_after_duration": (
        _set("end_offset_s", 3, 7.501),
        "expect_column_pair_values_a_to_be_greater_than_b",
        "(end_video_duration_s, end_offset_s)",
    ),
    "start_after_duration": (
        _set("start_s", 1, 8.0),
        "expect_column_pair_values_a_to_be_greater_than_b",
        "(video_duration_s, start_s)",
    ),
    "end_offset_zero": (_set("end_offset_s", 0, 0.0), "expect_column_values_to_be_between", "end_offset_s"),
    "null_end_video": (_set("end_video_id", 2, None), "expect_column_values_to_not_be_null", "end_video_id"),
    "unknown_label": (_set("label", 0, "dance"), "expect_column_values_to_be_in_set", "label"),
    "duplicate_event_id": (_set("event_id", 3, "ev-000000"), "expect_column_values_to_be_unique", "event_id"),
    "wrong_date": (
        _set("logical_date", 1, "2026-10-31"),
        "expect_column_values_to_be_in_set",
        "logical_date",
    ),
    "missing_column": (
        lambda df: df.drop(columns=["confidence"]),
        "expect_table_columns_to_match_set",
        "confidence",
    ),
    "extra_column": (lambda df: df.assign(score=0.5), "expect_table_columns_to_match_set", "score"),
    "string_confidence": (_set("confidence", 2, "high"), "expect_column_values_to_be_of_type", "confidence"),
    "null_label": (_set("label", 1, None), "expect_column_values_to_not_be_null", "label"),
    "float32_times": (
        lambda df: df.astype({"start_s": "float32"}),
        "expect_column_values_to_be_of_type",
        "start_s",
    ),
    "numeric_event_id": (_set("event_id", 0, 7), "expect_column_values_to_be_of_type", "event_id"),
    "null_run_id": (_set("run_id", 0, None), "expect_column_values_to_not_be_null", "run_id"),
    "unknown_duration": (
        _set("video_duration_s", 0, np.nan),
        "expect_column_pair_values_a_to_be_greater_than_b",
        "(video_duration_s, start_s)",
    ),
    "unknown_end_duration": (
        _set("end_video_duration_s", 0, np.nan),
        "expect_column_pair_values_a_to_be_greater_than_b",
        "(end_video_duration_s, end_offset_s)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_broken_variant_fails_naming_expectation_and_column(case):
    breaks, expectation, column = BROKEN[case]
    with pytest.raises(ValidationFailed) as err:
        validate_events(breaks(events()), DATE, LABELS)
    msg = str(err.value)
    assert msg.startswith(f"events for {DATE} failed validation: suite events: ")
    assert expectation in msg
    assert column in msg
    assert err.value.reason == "validation_failed"
    assert err.value.docs_index is None


def test_failure_message_lists_count_and_values():
    with pytest.raises(ValidationFailed) as err:
        validate_events(_set("confidence", 1, 1.7)(events()), DATE, LABELS)
    n = len(events_expectations(DATE, LABELS))
    assert str(err.value) == (
        f"events for {DATE} failed validation: suite events: 1 of {n} expectations failed: "
        "expect_column_values_to_be_between on confidence: 1 unexpected, e.g. [1.7]"
    )


def test_schema_failure_names_missing_and_unexpected_columns():
    df = events().drop(columns=["run_id"]).assign(score=0.5)
    with pytest.raises(ValidationFailed) as err:
        validate_events(df, DATE, LABELS)
    assert "expect_table_columns_to_match_set: unexpected ['score'], missing ['run_id']" in str(err.value)


def test_failure_writes_data_docs_before_raising(tmp_path):
    with pytest.raises(ValidationFailed) as err:
        validate_events(_set("confidence", 1, 1.7)(events()), DATE, LABELS, docs_dir=tmp_path)
    assert err.value.docs_index == str((tmp_path / "index.html").resolve())
    assert err.value.docs_index in str(err.value)
    assert (tmp_path / "index.html").is_file()
    (page,) = (tmp_path / "validations" / "events").rglob("*.html")
    text = _page_text(page)
    assert "Expectation Suite: events" in text and "Status: Failed" in text
    assert "Unsuccessful Expectations 1" in text
    assert "values must be greater than or equal to 0.0 and less than or equal to 1.0" in text
    assert "1.7" in text


@pytest.mark.parametrize(
    "empty",
    [
        pytest.param(lambda: events().iloc[0:0], id="typed"),
        pytest.param(lambda: pd.DataFrame(columns=list(EVENT_COLUMNS)), id="object"),
        pytest.param(lambda: pd.DataFrame({c: [] for c in EVENT_COLUMNS}), id="float64"),
    ],
)
def test_empty_frame_passes(empty, tmp_path):
    result = validate_events(empty(), DATE, LABELS, docs_dir=tmp_path)
    assert result.success
    assert (tmp_path / "index.html").is_file()


def test_empty_frame_still_checks_the_schema():
    with pytest.raises(ValidationFailed, match="expect_table_columns_to_match_set: missing \\['run_id'\\]"):
        validate_events(pd.DataFrame(columns=[c for c in EVENT_COLUMNS if c != "run_id"]), DATE, LABELS)


def test_ten_thousand_events_with_docs_validate_quietly(tmp_path, capfd):
    # How fast is measured by bench/suite_timings.py, not bounded here.
    result = validate_events(events(10_000), DATE, LABELS, docs_dir=tmp_path)
    assert result.success and (tmp_path / "index.html").is_file()
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_manifest_suite_writes_data_docs_too(tmp_path):
    with pytest.raises(ValidationFailed) as err:
        validate_manifest(pd.DataFrame({"video_id": ["v1"]}), DATE, docs_dir=tmp_path)
    assert "expect_table_columns_to_match_set: missing [" in str(err.value)
    assert err.value.docs_index == str((tmp_path / "index.html").resolve())
    (page,) = (tmp_path / "validations" / "manifest").rglob("*.html")
    text = _page_text(page)
    assert "Expectation Suite: manifest" in text and "Status: Failed" in text
    assert "Must have at least these columns" in text


def test_gx_stays_quiet_under_info_logging(tmp_path):
    """A fresh process logging at INFO (as Airflow tasks do) sees our summary line, not GX's chatter."""
    script = f"""
import datetime as dt, logging, pandas as pd
from pathlib import Path
logging.basicConfig(level=logging.INFO)
from actrec_batch.expectations import EVENT_COLUMNS, validate_events
empty = pd.DataFrame(columns=list(EVENT_COLUMNS))
validate_events(empty, dt.date(2026, 11, 1), ["fall"], docs_dir=Path({str(tmp_path)!r}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout == ""
    n = len(events_expectations(DATE, ["fall"]))
    assert out.stderr.splitlines() == [
        f"INFO:actrec_batch.expectations:events for {DATE}: suite events: {n} expectations passed"
    ]
    assert (tmp_path / "index.html").is_file()
