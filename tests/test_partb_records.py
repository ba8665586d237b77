"""Part B's result records: each round-trips through JSON (what the run cache keeps), older runs'
metrics read with their later fields at the defaults, and a missing field is named."""

from __future__ import annotations

import json

import pytest
import torch

from diffusion_lab.experiments import partb_records as rec
from diffusion_lab.experiments.gpu_session import MEASUREMENTS

SHARES = tuple(0.1 + 0.01 * d for d in range(10))

RECORDS = [
    rec.DenoiserResults((rec.DenoiserRow(0.0, None, 30.5, 0.99, 0, 0.0, None, 1.0),
                         rec.DenoiserRow(0.5, 6.25, 20.125, 0.875, 5, 1.5, 15.0, 0.5))),
    rec.PureNoiseResults({1: rec.PureNoiseDistance(0.25, 0.0625), 5: rec.PureNoiseDistance(0.125, 0.03125)}),
    rec.JudgeReference(0.99, 2.5, 0.995, 0.98, SHARES, 0.9),
    rec.TimeScores((rec.TimeScoreRow(2, "ema", 0.75, SHARES, 9.5, 50, 99, 1.25, 0.9, 0.16, "noise"),
                    rec.TimeScoreRow(2, "raw", 0.5, SHARES, 19.0, 100, 100, 2.5, start="matched"))),
    rec.GuidanceSweep((rec.SweepRow(5.0, 0.995, tuple([0.99] * 10), 0.97, 12.0, 1234.5, 0.75),), steps=30),
    rec.FlowScores(rec.FlowScoreRow(3, 0.8, SHARES, 7.0, 1.5, 1000)),
    rec.FlowScores(rec.FlowScoreRow(3, 0.8, SHARES, 7.0, 1.5, 1000, judge_accuracy=0.99,
                                    per_class_accuracy=tuple([0.99] * 10))),
    rec.Comparison((rec.ComparisonRow("heun", 10, 5, 1, 0.7, 0.05, 30.0, 2.5, judge_accuracy=0.9),
                    rec.ComparisonRow("ddpm", 10, 10, 0, 0.6, 0.04, 40.0, 3.5)),
                   frechet_floor=2.0, num_timesteps=300, images_seen=rec.ImagesSeen(6000, 6000)),
    rec.SampleRun({1: rec.SamplingTime(1.5, 100.0, 300), 2: rec.SamplingTime(1.25, 120.0, 300)}),
    rec.TrainingSummary(10.5, 1000.0, 60000, "bf16", 12345, 40, {1: "epoch 1 of 2", 2: "epoch 2 of 2"}, 0.03125),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: type(record).__name__)
def test_every_record_round_trips_through_json(record):
    metrics = record.to_metrics()
    text = json.dumps(metrics, allow_nan=False)  # JSON-safe: no tuples, int keys or tensors survive as such
    again = type(record).from_metrics(json.loads(text))
    assert again == record
    assert type(record).of(type("Run", (), {"metrics": json.loads(text)})()) == record


def test_epoch_keys_are_strings_in_json_and_ints_in_the_record():
    metrics = rec.SampleRun({2: rec.SamplingTime(1.0, 2.0, 3)}).to_metrics()
    assert list(metrics["sampling"]) == ["2"]
    assert list(rec.SampleRun.from_metrics(metrics).sampling) == [2]


def test_a_fractional_epoch_keeps_its_fraction_and_a_whole_one_reads_as_an_int():
    """Quick's flow checkpoints at 0.2 of 2 epochs: "0.2" in JSON, 0.2 in the record; "1", 1.0 and 1
    are one checkpoint, stored as "1"."""
    metrics = rec.SampleRun({0.2: rec.SamplingTime(1.0, 2.0, 3), 1.0: rec.SamplingTime(1.0, 2.0, 3)}).to_metrics()
    assert list(metrics["sampling"]) == ["0.2", "1"]
    back = rec.SampleRun.from_metrics(metrics).sampling
    assert list(back) == [0.2, 1] and all(type(epoch) is type(want) for epoch, want in zip(back, (0.2, 1)))
    summary = rec.TrainingSummary.from_metrics({**RECORDS[-1].to_metrics(), "checkpoint_labels": {"0.2": "a", "2": "b"}})
    assert summary.checkpoint_labels == {0.2: "a", 2: "b"}
    assert rec.FlowScoreRow(2.0, 0.8, SHARES, 7.0, 1.5, 1000).to_metrics()["epoch"] == 2.0
    assert type(rec.FlowScoreRow.from_metrics(rec.FlowScoreRow(2.0, 0.8, SHARES, 7.0, 1.5, 1000).to_metrics()).epoch) is int


def test_older_rows_read_with_the_later_fields_at_their_defaults():
    row = {"epoch": 2, "weights": "raw", "confident_fraction": 0.5, "class_shares": list(SHARES),
           "frechet_distance": 9.0, "steps": 100, "evaluations": 100, "wall_time_s": 1.0, "corrector_snr": None}
    read = rec.TimeScores.from_metrics({"rows": [row]}).rows[0]
    assert read.start == "noise" and read.corrector_snr is None and read.class_shares == SHARES
    assert rec.FlowScoreRow.from_metrics({k: v for k, v in row.items() if k in
                                          ("epoch", "confident_fraction", "class_shares", "frechet_distance",
                                           "wall_time_s")} | {"samples": 10}).judge_accuracy is None


def test_a_missing_field_is_named():
    with pytest.raises(KeyError, match="frechet_floor"):
        rec.JudgeReference.from_metrics({"test_accuracy": 0.99, "train_accuracy_of_pick": 1.0,
                                         "confident_fraction": 0.9, "class_shares": list(SHARES)})


def test_the_gpu_sessions_kept_in_the_repository_read_as_records():
    """The records keep the metrics' keys, so the sessions measured before them still read."""
    kinds = {"partb/judge-reference": rec.JudgeReference, "partb/time-ddpm-scores": rec.TimeScores,
             "partb/guidance-sweep": rec.GuidanceSweep, "partb/time-flow-scores": rec.FlowScores,
             "partb/class-flow-scores": rec.FlowScores, "partb/compare-time": rec.Comparison,
             "partb/compare-class": rec.Comparison}
    read = 0
    for runs in MEASUREMENTS.glob("*/runs.json"):
        for run in json.loads(runs.read_text()):
            if run["name"] in kinds and run["metrics"]:
                record = kinds[run["name"]].from_metrics(run["metrics"])
                assert kinds[run["name"]].from_metrics(record.to_metrics()) == record
                read += 1
    assert read >= len(kinds) - 1 or not list(MEASUREMENTS.glob("*/runs.json"))


def test_sampled_epochs_read_back_what_save_samples_wrote(tmp_path):
    class Scratch:
        def save(self, name, obj):
            torch.save(obj, tmp_path / name)

    class Run:
        def load(self, name):
            return torch.load(tmp_path / name, weights_only=True)

    samples = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    kept = {0.2: rec.SampledEpoch(samples, None, []), 1: rec.SampledEpoch(samples, None, []),
            2: rec.SampledEpoch(samples, torch.stack([samples, samples]), [300, 0])}
    rec.save_samples(Scratch(), kept, labels=None)
    assert sorted(torch.load(tmp_path / rec.SAMPLES_FILE, weights_only=True)["epochs"]) == ["0.2", "1", "2"]
    back = rec.sampled_epochs(Run())
    assert sorted(back) == [0.2, 1, 2] and back[2].frame_steps == [300, 0] and back[1].frames is None
    assert torch.equal(back[2].frames[1], samples)
