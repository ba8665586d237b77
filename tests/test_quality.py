"""The quality bar applied to hand-made Part B records: each part is met exactly at its bar and not
just past it, the real digits' row is built from the judge reference alone, the guided bar picks
the right scale, and the comparison averages its seeds."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from diffusion_lab.experiments import partb_records as rec
from diffusion_lab.experiments import quality
from diffusion_lab.profiles import COURSE_GUIDANCE, QualityBar

BAR = QualityBar()
EVEN = (0.1,) * 10
FLOOR = 2.0
PAST = 1e-6  # just past a bar


def run(metrics: dict, params: dict | None = None) -> SimpleNamespace:
    """A finished run as the quality module reads one: params and metrics."""
    return SimpleNamespace(params=params or {}, metrics=metrics)


def reference(floor: float = FLOOR) -> SimpleNamespace:
    return run(rec.JudgeReference(0.99, floor, 0.995, 0.98, (0.09,) + (0.101,) * 9).to_metrics(), {"count": 1000})


def training(sample_weights: str = "ema") -> SimpleNamespace:
    return run({"checkpoint_labels": {"1": "epoch 1 of 2", "2": "epoch 2 of 2"}},
               {"recipe": {"ema_decay": 0.999, "sample_weights": sample_weights}})


def score(epoch=2, weights="ema", confident=0.9, shares=EVEN, distance=4.0, steps=100, corrector_snr=None,
          start="noise") -> rec.TimeScoreRow:
    return rec.TimeScoreRow(epoch, weights, confident, shares, distance, steps, steps, 1.0,
                            corrector_snr=corrector_snr, start=start)


def scores(*rows) -> SimpleNamespace:
    return run(rec.TimeScores(rows).to_metrics())


def judged(row) -> dict[str, quality.Verdict]:
    (judgement,) = quality.unguided_judgements(scores(row), reference(), training(), BAR)
    return {verdict.part: verdict for verdict in judgement.verdicts}


def test_percent_is_one_helper_for_fractions_and_shares_of_a_whole():
    assert quality.percent(0.75) == "75.0%" and quality.percent(2, 64) == "3.1%"
    from diffusion_lab.report import parta_figures, partb_figures

    assert parta_figures.percent is partb_figures.percent is quality.percent


@pytest.mark.parametrize("confident, met", [(BAR.confident, True), (BAR.confident - PAST, False), (1.0, True)])
def test_the_confident_share_is_met_at_its_bar_and_not_below(confident, met):
    verdict = judged(score(confident=confident))["confident"]
    assert verdict.met is met and verdict.measured == confident and verdict.bar == BAR.confident
    assert verdict.reason == f"{quality.percent(confident)} read with confidence ≥ 0.9 (bar: 70.0%)"


@pytest.mark.parametrize("smallest, met", [(BAR.smallest_share, True), (BAR.smallest_share - PAST, False)])
def test_the_rarest_digit_is_met_at_its_bar_and_not_below(smallest, met):
    shares = (smallest,) + ((1 - smallest) / 9,) * 9
    verdict = judged(score(shares=shares))["smallest_share"]
    assert verdict.met is met and verdict.measured == smallest


@pytest.mark.parametrize("distance, met", [(BAR.unguided_frechet_ratio * FLOOR, True),
                                           (BAR.unguided_frechet_ratio * FLOOR + PAST, False)])
def test_the_frechet_ratio_is_met_at_its_bar_and_not_past_it(distance, met):
    verdict = judged(score(distance=distance))["frechet_ratio"]
    assert verdict.met is met and verdict.measured == pytest.approx(distance / FLOOR)
    assert verdict.reason.startswith(f"the Fréchet distance is {distance / FLOOR:.1f}× the real digits'")


def test_an_unguided_judgement_is_met_only_when_every_part_is():
    (good,) = quality.unguided_judgements(scores(score()), reference(), training(), BAR)
    (bad,) = quality.unguided_judgements(scores(score(confident=0.5)), reference(), training(), BAR)
    assert good.met and not bad.met and [v.met for v in bad.verdicts] == [False, True, True]


def test_only_the_sampled_weights_of_the_last_checkpoint_are_judged_one_per_sampler():
    rows = (score(epoch=1), score(weights="raw"), score(steps=100), score(steps=50, corrector_snr=0.16))
    judgements = quality.unguided_judgements(scores(*rows), reference(), training("ema"), BAR)
    assert [j.row for j in judgements] == [rows[2], rows[3]]
    assert [j.row for j in quality.unguided_judgements(scores(*rows), reference(), training("raw"), BAR)] == [rows[1]]


def test_the_real_digits_row_is_the_judge_references_reading():
    real = quality.real_digits(reference())
    assert real == quality.RealDigits(count=1000, accuracy=0.995, confident_fraction=0.98,
                                      class_shares=(0.09,) + (0.101,) * 9, frechet_distance=FLOOR, frechet_ratio=1.0)
    assert quality.rarest_digit(real.class_shares) == (0, 0.09)
    assert quality.rarest_digit((0.2, 0.05, 0.05)) == (1, 0.05), "the lowest digit on a tie"


def test_the_matched_start_is_set_beside_the_row_of_the_same_steps_from_noise():
    rows = (score(distance=40.0), score(steps=50, corrector_snr=0.16, distance=24.0), score(start="matched", distance=8.0))
    (effect,) = quality.matched_start_effects(scores(*rows), reference(), training())
    assert effect.matched == rows[2] and effect.twin == rows[0]
    assert (effect.twin_ratio, effect.matched_ratio) == (20.0, 4.0)
    assert quality.matched_start_effects(scores(rows[0]), reference(), training()) == []


def sweep(*rows) -> SimpleNamespace:
    return run(rec.GuidanceSweep(tuple(rec.SweepRow(g, accuracy, (accuracy,) * 10, 0.9, distance, 10.0, 1.0)
                                       for g, accuracy, distance in rows), steps=30).to_metrics())


@pytest.mark.parametrize("accuracy, distance, met", [
    (BAR.guided_accuracy, BAR.guided_frechet_ratio * FLOOR, True),
    (BAR.guided_accuracy - PAST, BAR.guided_frechet_ratio * FLOOR, False),
    (BAR.guided_accuracy, BAR.guided_frechet_ratio * FLOOR + PAST, False),
])
def test_the_guided_bar_needs_one_scale_accurate_enough_close_enough(accuracy, distance, met):
    judgement = quality.guided_judgement(sweep((1.0, accuracy, distance)), reference(), BAR)
    assert judgement.met is met and judgement.some_g.met is met and judgement.some_g.bar == BAR.guided_accuracy
    if met:
        assert judgement.best.guidance_scale == 1.0 and judgement.best_ratio == pytest.approx(3.0)
        assert judgement.closest is None
    elif distance <= BAR.guided_frechet_ratio * FLOOR:
        assert judgement.closest.guidance_scale == 1.0, "the most accurate within the distance"
    else:
        assert judgement.closest is None, "nothing is within the distance"
        assert judgement.some_g.measured is None


def test_the_guided_bar_picks_the_closest_of_the_good_scales_and_reads_the_courses_g():
    judgement = quality.guided_judgement(
        sweep((1.0, 0.96, 5.0), (2.0, 0.97, 4.0), (COURSE_GUIDANCE, BAR.course_guidance_accuracy, 40.0)), reference(), BAR)
    assert judgement.best.guidance_scale == 2.0 and judgement.course_verdict.met
    assert judgement.course_verdict.reason == f"99.0% accuracy at g = {COURSE_GUIDANCE:g}"
    below = quality.guided_judgement(sweep((COURSE_GUIDANCE, BAR.course_guidance_accuracy - PAST, 4.0)), reference(), BAR)
    assert not below.course_verdict.met
    absent = quality.guided_judgement(sweep((1.0, 0.96, 5.0)), reference(), BAR)
    assert absent.course is None and absent.course_verdict is None


def flow_scores(accuracy=None, confident=0.9, distance=4.0, g=COURSE_GUIDANCE) -> SimpleNamespace:
    row = rec.FlowScoreRow(3, confident, EVEN, distance, 1.0, 1000, judge_accuracy=accuracy,
                           per_class_accuracy=None if accuracy is None else (accuracy,) * 10)
    return run(rec.FlowScores(row).to_metrics(), {"guidance_scale": None if accuracy is None else g})


@pytest.mark.parametrize("accuracy, distance, met", [
    (BAR.course_guidance_accuracy, BAR.guided_frechet_ratio * FLOOR, [True, True]),
    (BAR.course_guidance_accuracy - PAST, BAR.guided_frechet_ratio * FLOOR, [False, True]),
    (BAR.course_guidance_accuracy, BAR.guided_frechet_ratio * FLOOR + PAST, [True, False]),
])
def test_the_class_flow_model_is_judged_by_accuracy_at_its_g_and_the_guided_distance(accuracy, distance, met):
    verdicts = quality.flow_verdicts(flow_scores(accuracy, distance=distance), reference(), BAR)
    assert [v.part for v in verdicts] == ["accuracy", "frechet_ratio"] and [v.met for v in verdicts] == met
    assert verdicts[0].reason.startswith(f"{quality.percent(accuracy)} judge accuracy at g = {COURSE_GUIDANCE:g}")


def test_the_time_flow_model_is_judged_by_the_unconditional_bar():
    verdicts = quality.flow_verdicts(flow_scores(confident=BAR.confident - PAST), reference(), BAR)
    assert [v.part for v in verdicts] == ["confident", "smallest_share", "frechet_ratio"]
    assert [v.met for v in verdicts] == [False, True, True]


def comparison(rows, floor=10.0) -> SimpleNamespace:
    return run(rec.Comparison(tuple(rows), floor, 300, rec.ImagesSeen(1, 1)).to_metrics())


def crow(sampler, n, seed, confident, distance, smallest=0.05, accuracy=None):
    return rec.ComparisonRow(sampler, n, n, seed, confident, smallest, distance, float(n), judge_accuracy=accuracy)


def test_comparison_points_average_the_seeds_and_keep_the_spread():
    points = quality.comparison_points(comparison([crow("ddpm", 10, 0, 0.5, 40.0), crow("ddpm", 10, 1, 0.7, 60.0)]))
    point = points[("ddpm", 10)]
    assert point.confident_fraction == pytest.approx(0.6) and point.frechet_distance == pytest.approx(50.0)
    assert point.frechet_ratio == pytest.approx(5.0) and point.frechet_spread == pytest.approx(20.0)
    assert point.seeds == 2 and point.judge_accuracy is None


@pytest.mark.parametrize("confident, smallest, distance, met", [
    (BAR.confident, BAR.smallest_share, BAR.unguided_frechet_ratio * 10.0, True),
    (BAR.confident - PAST, BAR.smallest_share, 20.0, False),
    (1.0, 0.0, 20.0, False),  # a confident one-digit blur
    (BAR.confident, BAR.smallest_share, BAR.unguided_frechet_ratio * 10.0 + PAST, False),
])
def test_a_comparison_point_clears_the_unconditional_bar_only_on_every_part(confident, smallest, distance, met):
    (point,) = quality.comparison_points(comparison([crow("euler", 10, 0, confident, distance, smallest)])).values()
    assert quality.meets_bar(point, False, BAR) is met


@pytest.mark.parametrize("accuracy, met", [(BAR.course_guidance_accuracy, True),
                                           (BAR.course_guidance_accuracy - PAST, False)])
def test_a_class_comparison_point_clears_the_bar_on_accuracy(accuracy, met):
    (point,) = quality.comparison_points(comparison([crow("heun", 10, 0, 0.1, 500.0, 0.0, accuracy)])).values()
    assert quality.meets_bar(point, True, BAR) is met


def test_comparison_findings_name_the_best_count_the_first_that_clears_and_the_shared_cost():
    rows = [crow("ddpm", 1, 0, 1.0, 45.0, smallest=0.0), crow("ddpm", 10, 0, 0.5, 40.0), crow("ddpm", 50, 0, 0.9, 30.0),
            crow("euler", 10, 0, 0.8, 20.0), crow("euler", 50, 0, 0.75, 60.0)]
    findings = quality.comparison_findings(comparison(rows), False, BAR, ("ddpm", "euler", "heun"))
    assert findings.samplers == (quality.SamplerFinding("ddpm", 50, 3.0, 50), quality.SamplerFinding("euler", 10, 2.0, 10))
    assert findings.shared_evaluations == 50 and findings.seconds_per_1000 == {"ddpm": 50.0, "euler": 50.0}
    far = quality.comparison_findings(comparison([crow("euler", 10, 0, 0.8, 60.0)]), False, BAR, ("ddpm", "euler"))
    assert far.samplers[0].first_met is None


# --- the schedule against a constant learning rate ------------------------------------------------


SCORED = {"samples": 1000, "sampler": "euler", "steps": 50, "batch": 500, "guidance_scale": None}


def time_flow_scores(confident: float, distance: float, samples: int = 1000, **params) -> SimpleNamespace:
    row = rec.FlowScoreRow(2, confident, EVEN, distance, 1.0, samples)
    return run(rec.FlowScores(row).to_metrics(), {**SCORED, "samples": samples, **params})


def test_the_run_better_on_both_measures_wins_by_its_margins():
    verdict = quality.schedule_verdict(time_flow_scores(0.85, 6.0), time_flow_scores(0.75, 8.0), reference())
    assert verdict.winner == quality.SCHEDULE
    assert verdict.confident.winner == verdict.frechet.winner == quality.SCHEDULE
    assert verdict.confident.margin == pytest.approx(0.10) and verdict.frechet.margin == pytest.approx(8.0 / 6.0)
    assert (verdict.schedule_ratio, verdict.constant_ratio) == (6.0 / FLOOR, 8.0 / FLOOR)
    flipped = quality.schedule_verdict(time_flow_scores(0.75, 8.0), time_flow_scores(0.85, 6.0), reference())
    assert flipped.winner == quality.CONSTANT and flipped.frechet.margin == pytest.approx(8.0 / 6.0)


def test_a_confident_difference_within_two_standard_errors_is_level():
    """At 1,000 samples each and shares near 0.8 two standard errors of the difference are 3.6 points:
    3 points apart is level, and the Fréchet ratio alone decides; 5 points apart is a win."""
    noise = 2 * (2 * 0.8 * 0.2 / 1000) ** 0.5
    level = quality.schedule_verdict(time_flow_scores(0.815, 6.0), time_flow_scores(0.785, 5.0), reference())
    assert level.confident.winner is None and level.confident.noise == pytest.approx(noise, rel=0.01)
    assert level.winner == quality.CONSTANT
    won = quality.schedule_verdict(time_flow_scores(0.825, 6.0), time_flow_scores(0.775, 6.0), reference())
    assert won.confident.winner == quality.SCHEDULE and won.frechet.winner is None and won.winner == quality.SCHEDULE


def test_runs_that_split_the_measures_have_no_winner():
    verdict = quality.schedule_verdict(time_flow_scores(0.9, 8.0), time_flow_scores(0.7, 6.0), reference())
    assert verdict.confident.winner == quality.SCHEDULE and verdict.frechet.winner == quality.CONSTANT
    assert verdict.winner is None


def test_scores_drawn_another_way_are_refused():
    with pytest.raises(ValueError, match="steps 50 vs 10"):
        quality.schedule_verdict(time_flow_scores(0.8, 6.0), time_flow_scores(0.8, 6.0, steps=10), reference())
    with pytest.raises(ValueError, match="samples 1000 vs 100"):
        quality.schedule_verdict(time_flow_scores(0.8, 6.0), time_flow_scores(0.8, 6.0, samples=100), reference())
