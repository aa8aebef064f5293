"""Event-level evaluation: hand-made cases with known answers, and the loaders on a local store."""

from __future__ import annotations

import datetime as dt
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from actrec_batch import layout
from actrec_batch.errors import ActrecError
from actrec_batch.evaluation import (
    GTEvent,
    PredEvent,
    evaluate,
    labelled_videos,
    load_predictions_parquet,
    load_truth,
    tiou,
)
from actrec_batch.storage import open_store

LABELS = ["walk", "run", "wave"]
DATE = dt.date(2026, 11, 24)
V1 = "footage/date=2026-11-24/camera=cam-01/cam-01_a.mp4"
V2 = "footage/date=2026-11-24/camera=cam-02/cam-02_b.mp4"


def gt(label, start, end, video=V1):
    return GTEvent(video, label, start, end)


def pred(label, start, end, confidence=0.9, video=V1):
    return PredEvent(video, label, start, end, confidence)


def ratios(report_json, tiou_key):
    entry = report_json["at_tiou"][tiou_key]
    return entry["precision"], entry["recall"], entry["f1"]


def test_tiou_of_half_open_ranges():
    assert tiou(0, 10, 0, 9) == pytest.approx(0.9)
    assert tiou(20, 30, 20, 26) == pytest.approx(0.6)
    assert tiou(0, 1, 1, 2) == 0.0


def test_precision_recall_f1_at_each_tiou():
    truths = [gt("walk", 0, 10), gt("walk", 20, 30), gt("walk", 40, 50), gt("walk", 60, 70)]
    preds = [
        pred("walk", 0, 9),  # tIoU 0.9
        pred("walk", 20, 26),  # 0.6
        pred("walk", 44, 55),  # 6 / 15 = 0.4
    ]
    report = evaluate(preds, truths, LABELS).to_json()
    assert ratios(report, "0.3") == pytest.approx((1.0, 3 / 4, 6 / 7))
    assert ratios(report, "0.5") == pytest.approx((2 / 3, 1 / 2, 4 / 7))
    assert ratios(report, "0.7") == pytest.approx((1 / 3, 1 / 4, 2 / 7))
    assert (report["precision"], report["recall"], report["f1"]) == pytest.approx((2 / 3, 1 / 2, 4 / 7))
    assert {k: report["at_tiou"]["0.5"][k] for k in ("tp", "fp", "fn")} == {"tp": 2, "fp": 1, "fn": 2}


def test_overall_numbers_are_micro_averaged_over_labels_and_videos():
    truths = [gt("walk", 0, 10), gt("run", 0, 10, video=V2), gt("run", 20, 30, video=V2)]
    preds = [
        pred("walk", 0, 10),
        pred("walk", 50, 60),  # FP
        pred("run", 0, 10, video=V2),
        pred("run", 20, 30, video=V1),  # right time, wrong video: FP, and the V2 event is missed
    ]
    report = evaluate(preds, truths, LABELS)
    assert (report.precision, report.recall) == pytest.approx((2 / 4, 2 / 3))
    per_class = report.to_json()["per_class"]
    assert per_class["walk"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert per_class["run"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    # a label without ground truth or predictions has a row of zeros
    assert per_class["wave"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report.videos == 2 and report.gt_events == 3 and report.pred_events == 4


def test_more_confident_predictions_match_first():
    truths = [gt("walk", 0, 10)]
    preds = [pred("walk", 0, 10, confidence=0.5), pred("walk", 3, 10, confidence=0.9)]  # tIoU 1.0 and 0.7
    report = evaluate(preds, truths, LABELS)
    assert report.to_json()["at_tiou"]["0.5"]["tp"] == 1
    assert report.to_json()["at_tiou"]["0.5"]["fp"] == 1
    assert report.median_start_error_s == 3.0  # the confident prediction took the event
    # at 0.8 only the less confident one qualifies, so it matches
    at_08 = evaluate(preds, truths, LABELS, tious=(0.8,))
    assert at_08.overall(0.8).tp == 1


def test_a_prediction_takes_the_ground_truth_it_overlaps_most():
    truths = [gt("walk", 0, 10), gt("walk", 8, 20)]
    preds = [pred("walk", 7, 20, confidence=0.9), pred("walk", 0, 9, confidence=0.8)]
    report = evaluate(preds, truths, LABELS)
    assert report.overall(0.5).tp == 2  # greedy by overlap, not by order: both match


def test_duplicate_predictions_give_one_tp_and_one_fp():
    report = evaluate([pred("walk", 0, 10), pred("walk", 0.5, 10)], [gt("walk", 0, 10)], LABELS)
    counts = report.per_class["walk"]
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 0)
    assert report.confusion["walk"]["walk"] == 1
    assert report.confusion["background"]["walk"] == 0  # the duplicate overlaps an event


def test_a_label_mismatch_shows_in_the_confusion_matrix():
    report = evaluate([pred("run", 0, 10)], [gt("walk", 0.5, 10)], LABELS)
    assert report.per_class["walk"].fn == 1 and report.per_class["run"].fp == 1
    assert report.confusion["walk"]["run"] == 1
    assert report.confusion["walk"]["missed"] == 0
    assert sum(report.confusion["background"].values()) == 0


def test_background_predictions_and_missed_events():
    truths = [gt("walk", 0, 10), gt("wave", 30, 40)]
    preds = [pred("walk", 0, 10), pred("wave", 50, 55), pred("run", 32, 60)]  # run: tIoU 8/30 with wave
    confusion = evaluate(preds, truths, LABELS).confusion
    assert confusion["background"] == {"walk": 0, "run": 1, "wave": 1, "missed": 0}
    assert confusion["wave"]["missed"] == 1
    assert confusion["walk"]["walk"] == 1
    assert set(confusion) == {"walk", "run", "wave", "background"}


def test_median_boundary_errors_over_matches_at_half_tiou():
    truths = [gt("walk", 0, 10), gt("walk", 20, 30), gt("walk", 40, 50), gt("walk", 60, 70)]
    preds = [
        pred("walk", 1, 10),  # start 1, end 0 -> 0.5
        pred("walk", 20, 32),  # start 0, end 2 -> 1.0
        pred("walk", 43, 53),  # start 3, end 3 -> 3.0
        pred("walk", 65, 80),  # tIoU 5/20: not a match at 0.5, so not counted
    ]
    report = evaluate(preds, truths, LABELS)
    assert report.median_boundary_error_s == pytest.approx(1.0)
    assert report.median_start_error_s == pytest.approx(1.0)
    assert report.median_end_error_s == pytest.approx(2.0)


def test_no_predictions():
    report = evaluate([], [gt("walk", 0, 10), gt("run", 5, 8)], LABELS)
    out = report.to_json()
    assert (out["precision"], out["recall"], out["f1"]) == (0.0, 0.0, 0.0)
    assert out["at_tiou"]["0.5"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 2}
    assert out["median_boundary_error_s"] is None
    assert out["confusion"]["walk"]["missed"] == 1
    json.dumps(out)
    empty = evaluate([], [], LABELS).to_json()
    assert empty["f1"] == 0.0 and empty["videos"] == 0


def test_json_has_the_contract_keys():
    report = evaluate([pred("walk", 0, 10)], [gt("walk", 0, 10)], LABELS)
    out = json.loads(json.dumps(report.to_json()))
    assert {"precision", "recall", "f1", "per_class", "tiou"} <= set(out)
    assert {
        "at_tiou",
        "median_boundary_error_s",
        "median_start_error_s",
        "median_end_error_s",
        "confusion",
        "videos",
        "gt_events",
        "pred_events",
    } <= set(out)
    assert out["tiou"] == 0.5
    assert list(out["per_class"]) == LABELS
    for entry in out["per_class"].values():
        assert set(entry) == {"precision", "recall", "f1", "support"}
    assert list(out["at_tiou"]) == ["0.3", "0.5", "0.7"]
    assert out["f1"] == 1.0 and out["median_boundary_error_s"] == 0.0


def test_half_tiou_is_always_evaluated_and_thresholds_are_checked():
    report = evaluate([], [], LABELS, tious=(0.7,))
    assert list(report.to_json()["at_tiou"]) == ["0.5", "0.7"]
    with pytest.raises(ValueError, match="tIoU"):
        evaluate([], [], LABELS, tious=(0.0,))
    with pytest.raises(ValueError, match="reserved"):
        evaluate([], [gt("missed", 0, 1)], LABELS)


def test_labels_outside_the_list_are_appended_not_dropped():
    report = evaluate([pred("dance", 0, 10)], [gt("walk", 0, 10)], LABELS)
    assert report.labels == ("walk", "run", "wave", "dance")
    assert report.per_class["dance"].fp == 1


def test_predictions_on_unlabelled_videos_are_ignored_when_videos_are_given():
    preds = [pred("walk", 0, 10), pred("walk", 0, 10, video=V2)]
    truths = [gt("walk", 0, 10)]
    assert evaluate(preds, truths, LABELS, videos=[V1]).precision == 1.0
    assert evaluate(preds, truths, LABELS).precision == 0.5


def test_table_report():
    truths = [gt("walk", 0, 10), gt("sit_down", 20, 22)]
    text = evaluate([pred("walk", 0, 9), pred("run", 40, 50)], truths, [*LABELS, "sit_down"]).to_table()
    lines = text.splitlines()
    assert lines[0] == "Event-level evaluation: 1 videos, 2 ground-truth events, 2 predicted events"
    assert any(line.split()[:4] == ["0.5", "0.500", "0.500", "0.500"] for line in lines)
    assert any(line.split() == ["sit_down", "1", "0.000", "0.000", "0.000", "0", "0", "1"] for line in lines)
    assert any(line.split() == ["background", "0", "1", "0", "0", "0"] for line in lines)
    assert "Median boundary error at tIoU 0.5: 0.500 s (start 0.000 s, end 1.000 s)" in text


# --- loaders on a local store ------------------------------------------------------------------------


def _sidecar(name, events):
    doc = {"video": name, "fps": 15.0, "duration_s": 60.0, "events": events}
    return json.dumps(doc).encode()


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "store"))
    store.put_bytes(V1, b"not really a video")
    store.put_bytes(
        layout.sidecar_key(V1),
        _sidecar("cam-01_a.mp4", [{"label": "walk", "start_s": 1.0, "end_s": 4.5, "track": 0}]),
    )
    store.put_bytes(
        layout.sidecar_key(V2),
        _sidecar(
            "cam-02_b.mp4",
            [
                {"label": "wave", "start_s": 10.0, "end_s": 12.0},
                {"label": "run", "start_s": 2.0, "end_s": 6.0},
            ],
        ),
    )
    v3 = "footage/date=2026-11-24/camera=cam-02/cam-02_c.mp4"
    store.put_bytes(layout.sidecar_key(v3), _sidecar("cam-02_c.mp4", []))  # labelled, nothing happens
    store.put_bytes("footage/date=2026-11-24/stray.mp4.labels.json", _sidecar("stray.mp4", []))
    store.put_bytes("footage/date=2026-11-25/camera=cam-01/x.mp4", b"unlabelled")
    return store


def _put_events(store, key, rows):
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    store.put_bytes(key, buf.getvalue())


def _row(video, label, start, end, confidence=0.8, **extra):
    return {
        "video_key": video,
        "label": label,
        "start_s": start,
        "end_s": end,
        "confidence": confidence,
        **extra,
    }


def test_load_truth_reads_the_sidecars_of_the_date(store):
    truths = load_truth(store, DATE)
    assert truths == [
        GTEvent(V1, "walk", 1.0, 4.5),
        GTEvent(V2, "run", 2.0, 6.0),
        GTEvent(V2, "wave", 10.0, 12.0),
    ]
    assert load_truth(store, DATE, videos=[V2]) == truths[1:]
    assert len(labelled_videos(store, DATE)) == 3  # the stray sidecar is outside any camera


def test_load_truth_without_sidecars_names_the_date(store):
    with pytest.raises(ActrecError, match="2026-11-25") as exc:
        load_truth(store, dt.date(2026, 11, 25))
    assert exc.value.reason == "no_ground_truth"
    assert "\n" not in str(exc.value)


def test_load_truth_rejects_a_bad_sidecar(store):
    store.put_bytes(layout.sidecar_key(V1), _sidecar("a.mp4", [{"label": "walk", "start_s": 3, "end_s": 1}]))
    with pytest.raises(ActrecError, match="cam-01_a.mp4.labels.json") as exc:
        load_truth(store, DATE)
    assert exc.value.reason == "bad_ground_truth"
    store.put_bytes(layout.sidecar_key(V1), b"{not json")
    with pytest.raises(ActrecError, match="not valid JSON"):
        load_truth(store, DATE)


def test_load_predictions_parquet_and_evaluate_end_to_end(store):
    _put_events(store, "events/date=2026-11-24/part-0.parquet", [_row(V1, "walk", 1.1, 4.4, 0.9)])
    _put_events(
        store,
        "events/date=2026-11-24/part-1.parquet",
        [_row(V2, "run", 2.2, 6.0), _row(V2, "walk", 30.0, 33.0, 0.6)],
    )
    store.put_bytes("events/date=2026-11-24/_SUCCESS", b"")
    preds = load_predictions_parquet(store, DATE)
    assert sorted(preds, key=lambda p: p.start_s) == [
        PredEvent(V1, "walk", 1.1, 4.4, 0.9),
        PredEvent(V2, "run", 2.2, 6.0, 0.8),
        PredEvent(V2, "walk", 30.0, 33.0, 0.6),
    ]
    report = evaluate(preds, load_truth(store, DATE), LABELS, videos=labelled_videos(store, DATE))
    assert (report.precision, report.recall) == pytest.approx((2 / 3, 2 / 3))
    assert report.videos == 3
    assert report.confusion["wave"]["missed"] == 1 and report.confusion["background"]["walk"] == 1


def test_several_model_versions_need_a_choice(store):
    _put_events(
        store,
        "events/date=2026-11-24/part-0.parquet",
        [
            _row(V1, "walk", 1.0, 4.0, model_version="ref@1"),
            _row(V1, "walk", 1.2, 4.5, model_version="ref@2"),
        ],
    )
    _put_events(store, "events/date=2026-11-24/model_version=ref@3/part-0.parquet", [_row(V2, "run", 2, 6)])
    with pytest.raises(ActrecError, match=r"\['ref@1', 'ref@2', 'ref@3'\]") as exc:
        load_predictions_parquet(store, DATE)
    assert exc.value.reason == "ambiguous_model_version"
    assert load_predictions_parquet(store, DATE, model_version="ref@2") == [
        PredEvent(V1, "walk", 1.2, 4.5, 0.8)
    ]
    assert load_predictions_parquet(store, DATE, model_version="ref@3") == [
        PredEvent(V2, "run", 2.0, 6.0, 0.8)
    ]
    with pytest.raises(ActrecError, match="ref@9") as exc:
        load_predictions_parquet(store, DATE, model_version="ref@9")
    assert exc.value.reason == "no_events"


def test_load_predictions_without_events_names_the_location(store):
    with pytest.raises(ActrecError, match="events/date=2026-11-24/") as exc:
        load_predictions_parquet(store, DATE)
    assert exc.value.reason == "no_events"


def test_load_predictions_rejects_bad_files(store):
    _put_events(store, "events/date=2026-11-24/part-0.parquet", [{"video_key": V1, "label": "walk"}])
    with pytest.raises(ActrecError, match="lack the columns") as exc:
        load_predictions_parquet(store, DATE)
    assert exc.value.reason == "bad_events"
    store.put_bytes("events/date=2026-11-24/part-0.parquet", b"not parquet")
    with pytest.raises(ActrecError, match="part-0.parquet") as exc:
        load_predictions_parquet(store, DATE)
    assert exc.value.reason == "bad_events"


def test_an_empty_events_file_means_no_predictions(store):
    store.put_bytes("events/date=2026-11-24/part-0.parquet", _empty_events_parquet())
    assert load_predictions_parquet(store, DATE) == []


def _empty_events_parquet() -> bytes:
    schema = pa.schema(
        [
            ("video_key", pa.string()),
            ("label", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("confidence", pa.float32()),
        ]
    )
    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)
    return buf.getvalue()
