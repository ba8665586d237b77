"""Part B's samples against the project's quality bar (`profiles.QualityBar`): every threshold is
applied here, once, and handed to the pages as verdicts; the pages only lay them out.

A `Verdict` is one part of a bar: the measured value, the bar, whether it is met, and the measure
in words. The Fréchet distance is always judged in units of as many real digits' distance (the
floor), `frechet_ratio`.
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion_lab.experiments import partb_models
from diffusion_lab.experiments.partb_records import (
    Comparison,
    ComparisonRow,
    FlowScoreRow,
    FlowScores,
    GuidanceSweep,
    JudgeReference,
    SweepRow,
    TimeScoreRow,
    TimeScores,
)
from diffusion_lab.profiles import COURSE_GUIDANCE, QualityBar
from diffusion_lab.runcache.runs import RunRecord


def percent(part: float, whole: float = 1.0) -> str:
    """`part` as a share of `whole` (default: a fraction), one decimal: percent(0.75) == "75.0%",
    percent(2, 64) == "3.1%"."""
    return f"{100 * part / whole:.1f}%"


def frechet_ratio(distance: float, floor: float) -> float:
    """A Fréchet distance in units of the real digits' (`floor`: theirs, for the same count)."""
    return distance / floor


@dataclass(frozen=True)
class Verdict:
    """One part of a bar: `measured` against `bar`, met or not; `reason` says what was measured
    and the bar in words ("75.0% read with confidence ≥ 0.9 (bar: 70.0%)")."""

    part: str  # "confident", "smallest_share", "frechet_ratio", "accuracy", "guided"
    measured: float | None  # None where nothing was measured that the bar could read
    bar: float
    met: bool
    reason: str


def all_met(verdicts) -> bool:
    return all(verdict.met for verdict in verdicts)


def rarest_digit(shares) -> tuple[int, float]:
    """(digit, share) of the digit read least often; the lowest digit on a tie."""
    digit = min(range(len(shares)), key=shares.__getitem__)
    return digit, shares[digit]


# --- the real digits: the yardstick of every table --------------------------------------------------


@dataclass(frozen=True)
class RealDigits:
    """What the judge reads in `count` real training digits, as a row beside the samples' rows."""

    count: int
    accuracy: float
    confident_fraction: float
    class_shares: tuple[float, ...]
    frechet_distance: float  # the floor itself
    frechet_ratio: float = 1.0


def real_digits(reference: RunRecord) -> RealDigits:
    """The real-digits row of the judge reference run (`partb.judge_reference`)."""
    judged = JudgeReference.of(reference)
    return RealDigits(count=reference.params["count"], accuracy=judged.train_accuracy_of_pick,
                      confident_fraction=judged.confident_fraction, class_shares=judged.class_shares,
                      frechet_distance=judged.frechet_floor)


def floor_of(reference: RunRecord) -> float:
    return JudgeReference.of(reference).frechet_floor


# --- unconditional samples ----------------------------------------------------------------------------


def unguided_verdicts(confident_fraction: float, class_shares, ratio: float, bar: QualityBar,
                      confidence: float = 0.9) -> tuple[Verdict, Verdict, Verdict]:
    """The three parts of the bar for unconditional samples: the confident share, the rarest
    digit's share and the Fréchet ratio."""
    smallest = min(class_shares)
    return (
        Verdict("confident", confident_fraction, bar.confident, confident_fraction >= bar.confident,
                f"{percent(confident_fraction)} read with confidence ≥ {confidence:g} (bar: {percent(bar.confident)})"),
        Verdict("smallest_share", smallest, bar.smallest_share, smallest >= bar.smallest_share,
                f"the rarest digit is {percent(smallest)} of the samples (bar: {percent(bar.smallest_share)})"),
        Verdict("frechet_ratio", ratio, bar.unguided_frechet_ratio, ratio <= bar.unguided_frechet_ratio,
                f"the Fréchet distance is {ratio:.1f}× the real digits' (bar: {bar.unguided_frechet_ratio:g}×)"),
    )


def final_score_rows(scores: TimeScores, training: RunRecord) -> list[TimeScoreRow]:
    """The scores rows of the weights the figures sample at the last checkpoint, one per sampler."""
    last = partb_models.checkpoint_epochs(training)[-1]
    weights = partb_models.sampled_weights(training)
    return [row for row in scores.rows if row.epoch == last and row.weights == weights]


@dataclass(frozen=True)
class UnguidedJudgement:
    """The bar for unconditional samples applied to one scores row."""

    row: TimeScoreRow
    verdicts: tuple[Verdict, ...]

    @property
    def met(self) -> bool:
        return all_met(self.verdicts)


def unguided_judgements(scores: RunRecord, reference: RunRecord, training: RunRecord,
                        bar: QualityBar) -> list[UnguidedJudgement]:
    """The bar applied to each sampler's row of the sampled weights at the last checkpoint."""
    floor = floor_of(reference)
    return [UnguidedJudgement(row, unguided_verdicts(row.confident_fraction, row.class_shares,
                                                     frechet_ratio(row.frechet_distance, floor), bar, row.confidence))
            for row in final_score_rows(TimeScores.of(scores), training)]


@dataclass(frozen=True)
class MatchedStartEffect:
    """A row sampled from the matched start and its twin: the same steps and corrector from N(0, I)
    (None where the scores have no such row), with their Fréchet ratios."""

    matched: TimeScoreRow
    twin: TimeScoreRow | None
    matched_ratio: float
    twin_ratio: float | None


def matched_start_effects(scores: RunRecord, reference: RunRecord, training: RunRecord) -> list[MatchedStartEffect]:
    """Each last-checkpoint row from the matched start beside its twin from N(0, I)."""
    rows, floor = final_score_rows(TimeScores.of(scores), training), floor_of(reference)
    effects = []
    for row in rows:
        if row.start != "matched":
            continue
        twin = next((other for other in rows if other.start == "noise" and other.steps == row.steps
                     and other.corrector_snr == row.corrector_snr), None)
        effects.append(MatchedStartEffect(row, twin, frechet_ratio(row.frechet_distance, floor),
                                          None if twin is None else frechet_ratio(twin.frechet_distance, floor)))
    return effects


# --- class-conditioned samples (the guidance sweep) -------------------------------------------------------


@dataclass(frozen=True)
class GuidedJudgement:
    """The bar for the class-conditioned DDPM, from its guidance sweep.

    best: the closest-to-real scale among those with accuracy >= guided_accuracy within
    guided_frechet_ratio (None: no scale clears both); closest: where none does, the most accurate
    scale within the distance (None where none is within it either); some_g: that part's verdict, on
    the accuracy of best or else closest; course: the sweep's row at the course's g and its verdict
    (None where the sweep lacks that g)."""

    some_g: Verdict
    best: SweepRow | None
    best_ratio: float | None
    closest: SweepRow | None
    closest_ratio: float | None
    course: SweepRow | None
    course_verdict: Verdict | None

    @property
    def met(self) -> bool:
        return self.some_g.met


def guided_judgement(sweep: RunRecord, reference: RunRecord, bar: QualityBar) -> GuidedJudgement:
    rows, floor = GuidanceSweep.of(sweep).rows, floor_of(reference)

    def ratio(row: SweepRow) -> float:
        return frechet_ratio(row.frechet_distance, floor)

    near = [row for row in rows if ratio(row) <= bar.guided_frechet_ratio]
    good = [row for row in near if row.judge_accuracy >= bar.guided_accuracy]
    best = min(good, key=lambda row: row.frechet_distance) if good else None
    closest = max(near, key=lambda row: row.judge_accuracy) if near and not good else None
    course = next((row for row in rows if row.guidance_scale == COURSE_GUIDANCE), None)
    course_verdict = None if course is None else Verdict(
        "accuracy", course.judge_accuracy, bar.course_guidance_accuracy,
        course.judge_accuracy >= bar.course_guidance_accuracy,
        f"{percent(course.judge_accuracy)} accuracy at g = {COURSE_GUIDANCE:g}")
    shown = best or closest
    some_g = Verdict(
        "guided", None if shown is None else shown.judge_accuracy, bar.guided_accuracy, best is not None,
        f"{percent(bar.guided_accuracy)} accuracy at some g within {bar.guided_frechet_ratio:g}× the real digits' "
        "distance" + ("" if shown is None else f" (g = {shown.guidance_scale:g}: {percent(shown.judge_accuracy)} at "
                                               f"{ratio(shown):.1f}×)"))
    return GuidedJudgement(some_g, best, None if best is None else ratio(best), closest,
                           None if closest is None else ratio(closest), course, course_verdict)


# --- flow matching ----------------------------------------------------------------------------------------


def flow_verdicts(scores: RunRecord, reference: RunRecord, bar: QualityBar) -> tuple[Verdict, ...]:
    """The bar for a flow model's scored samples: the class model's accuracy at its g and Fréchet
    ratio (the guided bar's distance); the time model's parts of the unconditional bar."""
    row = FlowScores.of(scores).row
    ratio = frechet_ratio(row.frechet_distance, floor_of(reference))
    if row.judge_accuracy is None:
        return unguided_verdicts(row.confident_fraction, row.class_shares, ratio, bar, row.confidence)
    return (
        Verdict("accuracy", row.judge_accuracy, bar.course_guidance_accuracy,
                row.judge_accuracy >= bar.course_guidance_accuracy,
                f"{percent(row.judge_accuracy)} judge accuracy at g = {scores.params['guidance_scale']:g} "
                f"(bar: {percent(bar.course_guidance_accuracy)})"),
        Verdict("frechet_ratio", ratio, bar.guided_frechet_ratio, ratio <= bar.guided_frechet_ratio,
                f"the Fréchet distance is {ratio:.1f}× the real digits' (bar: {bar.guided_frechet_ratio:g}×)"),
    )


# --- the schedule against a constant learning rate --------------------------------------------------------

SCHEDULE, CONSTANT = "schedule", "constant"


@dataclass(frozen=True)
class Duel:
    """Which of the two runs one measure favours: `winner` SCHEDULE, CONSTANT or None (level), and
    `margin`: for the confident share the difference in fractions (>= 0); for the Fréchet ratio the
    loser's ratio over the winner's (>= 1). `noise`: the difference the confident share reads as level
    within (two standard errors of a difference of two shares of `samples` each); 0 for the ratio,
    which has no such error here and is level only when equal."""

    measure: str  # "confident" or "frechet_ratio"
    winner: str | None
    margin: float
    noise: float = 0.0


@dataclass(frozen=True)
class ScheduleVerdict:
    """The time-conditioned flow model at a constant learning rate against the scheduled one, judged
    on the same samples budget and sampler (and the same noise): each run's row and Fréchet ratio, the
    two measures' duels, and `winner`: the run that wins one measure and loses neither (None: they
    split the measures, or both are level)."""

    schedule: FlowScoreRow
    constant: FlowScoreRow
    schedule_ratio: float
    constant_ratio: float
    confident: Duel
    frechet: Duel

    @property
    def winner(self) -> str | None:
        winners = {self.confident.winner, self.frechet.winner} - {None}
        return winners.pop() if len(winners) == 1 else None


def _confident_duel(schedule: FlowScoreRow, constant: FlowScoreRow) -> Duel:
    p, q = schedule.confident_fraction, constant.confident_fraction
    noise = 2 * (p * (1 - p) / schedule.samples + q * (1 - q) / constant.samples) ** 0.5
    winner = None if abs(p - q) <= noise else (SCHEDULE if p > q else CONSTANT)
    return Duel("confident", winner, abs(p - q), noise)


def _ratio_duel(schedule_ratio: float, constant_ratio: float) -> Duel:
    if schedule_ratio == constant_ratio:
        return Duel("frechet_ratio", None, 1.0)
    winner = SCHEDULE if schedule_ratio < constant_ratio else CONSTANT
    return Duel("frechet_ratio", winner, max(schedule_ratio, constant_ratio) / min(schedule_ratio, constant_ratio))


def schedule_verdict(schedule_scores: RunRecord, constant_scores: RunRecord, reference: RunRecord) -> ScheduleVerdict:
    """Which won, the learning-rate schedule or the constant rate, and by how much: on the share of
    samples the judge reads confidently (a difference within two standard errors is level) and on the
    Fréchet ratio. Refuses scores drawn with another sampler or budget."""
    compared = ("samples", "sampler", "steps", "batch", "guidance_scale")
    if any(schedule_scores.params[key] != constant_scores.params[key] for key in compared):
        raise ValueError("the schedule and the constant rate must be scored alike: "
                         + ", ".join(f"{key} {schedule_scores.params[key]} vs {constant_scores.params[key]}"
                                     for key in compared if schedule_scores.params[key] != constant_scores.params[key]))
    floor = floor_of(reference)
    schedule, constant = FlowScores.of(schedule_scores).row, FlowScores.of(constant_scores).row
    schedule_ratio = frechet_ratio(schedule.frechet_distance, floor)
    constant_ratio = frechet_ratio(constant.frechet_distance, floor)
    return ScheduleVerdict(schedule, constant, schedule_ratio, constant_ratio, _confident_duel(schedule, constant),
                           _ratio_duel(schedule_ratio, constant_ratio))


# --- DDPM against flow matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonPoint:
    """One (sampler, evaluations) of the comparison: its measures averaged over the sampling seeds,
    and the spread (max - min) of the Fréchet distance over them."""

    sampler: str
    evaluations: int
    steps: int
    seeds: int
    confident_fraction: float
    smallest_share: float
    frechet_distance: float
    frechet_ratio: float
    frechet_spread: float
    seconds_per_1000: float
    judge_accuracy: float | None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def comparison_points(run: RunRecord) -> dict[tuple[str, int], ComparisonPoint]:
    """(sampler, evaluations) -> the point, averaged over its sampling seeds."""
    compared = Comparison.of(run)
    grouped: dict[tuple[str, int], list[ComparisonRow]] = {}
    for row in compared.rows:
        grouped.setdefault((row.sampler, row.evaluations), []).append(row)
    points = {}
    for (sampler, evaluations), rows in grouped.items():
        distances = [row.frechet_distance for row in rows]
        accuracies = [row.judge_accuracy for row in rows]
        points[(sampler, evaluations)] = ComparisonPoint(
            sampler=sampler, evaluations=evaluations, steps=rows[0].steps, seeds=len(rows),
            confident_fraction=_mean([row.confident_fraction for row in rows]),
            smallest_share=_mean([row.smallest_share for row in rows]),
            frechet_distance=_mean(distances), frechet_ratio=frechet_ratio(_mean(distances), compared.frechet_floor),
            frechet_spread=max(distances) - min(distances),
            seconds_per_1000=_mean([row.seconds_per_1000 for row in rows]),
            judge_accuracy=None if None in accuracies else _mean(accuracies),
        )
    return points


def meets_bar(point: ComparisonPoint, conditional: bool, bar: QualityBar) -> bool:
    """Whether a comparison point clears the project's bar: class-conditioned, the accuracy required at
    the course's g; unconditional, every part of the bar (a one-step blur the judge reads confidently
    as one digit fails on the rarest digit and the distance)."""
    if conditional:
        return point.judge_accuracy >= bar.course_guidance_accuracy
    return (point.confident_fraction >= bar.confident and point.smallest_share >= bar.smallest_share
            and point.frechet_ratio <= bar.unguided_frechet_ratio)


@dataclass(frozen=True)
class SamplerFinding:
    """A sampler over the comparison's counts: where its Fréchet distance is lowest, and the fewest
    evaluations at which it clears the bar (None: at none measured)."""

    sampler: str
    best_evaluations: int
    best_ratio: float
    first_met: int | None


@dataclass(frozen=True)
class ComparisonFindings:
    samplers: tuple[SamplerFinding, ...]  # in `order`, the samplers measured
    shared_evaluations: int | None  # the largest count every measured sampler reached
    seconds_per_1000: dict[str, float]  # sampler -> the cost of 1,000 samples at that count


def comparison_findings(run: RunRecord, conditional: bool, bar: QualityBar, order) -> ComparisonFindings:
    """What the comparison's points show, for the samplers in `order` that were measured."""
    points = comparison_points(run)
    findings = []
    measured = [sampler for sampler in order if any(s == sampler for s, _ in points)]
    for sampler in measured:
        mine = {n: p for (s, n), p in points.items() if s == sampler}
        best = min(mine, key=lambda n: mine[n].frechet_distance)
        reaching = [n for n in sorted(mine) if meets_bar(mine[n], conditional, bar)]
        findings.append(SamplerFinding(sampler, best, mine[best].frechet_ratio, reaching[0] if reaching else None))
    common = sorted(set.intersection(*({n for s, n in points if s == sampler} for sampler in measured))) \
        if measured else []
    shared = common[-1] if common else None
    costs = {} if shared is None else {s: points[(s, shared)].seconds_per_1000 for s in measured}
    return ComparisonFindings(tuple(findings), shared, costs)
