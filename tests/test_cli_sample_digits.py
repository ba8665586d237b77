"""`sample-digits` on the tiny profile: what it writes, which model it uses (--train-seed, never
--seed), the sampler (--steps, --sampler), the time models (--num), the flow-matching models
(--model fm-class, fm-time) and every refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_lab.backends.mnist import MnistBackend
from diffusion_lab.cli import main
from diffusion_lab.cli.arguments import MAX_NUM
from diffusion_lab.mnist import training

T = 20  # the tiny profile's DDPMs


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
    for variable in ("DIFFUSION_LAB_SEED", "DIFFUSION_LAB_FORCE", "DIFFUSION_LAB_CACHE", "DIFFUSION_LAB_PROFILE"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run cache holding the class- and time-conditioned models of train seed 0."""
    cache = tmp_path_factory.mktemp("trained") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
        patch.delenv("DIFFUSION_LAB_SEED", raising=False)
        for model in ("class", "time", "fm-class", "fm-time"):
            out = cache.parent / f"{model}.npz"
            assert main(["sample-digits", "--model", model, "--profile", "tiny", "--cache-dir", str(cache),
                         "--out", str(out)]) == 0
    return cache


def _sample(cache: Path, out: Path, capsys, *options: str) -> tuple[dict, str]:
    assert main(["sample-digits", "--profile", "tiny", "--cache-dir", str(cache), "--out", str(out), *options]) == 0
    err = capsys.readouterr().err
    with np.load(out) as data:
        return dict(data), err


def _line(err: str, start: str) -> str:
    """The stderr line that starts with `start` (progress bars share stderr, split by \\r)."""
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(start)]
    assert len(lines) == 1, err
    return lines[0]


def _no_training(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("trained a model")

    monkeypatch.setattr(training, "train_ddpm", refuse)
    monkeypatch.setattr(training, "train_flow_matching", refuse)


def test_sample_digits_writes_images_and_labels(tmp_path, trained, capsys):
    out = tmp_path / "samples.npz"
    data, _ = _sample(trained, out, capsys, "--guidance", "5", "--per-class", "2", "--seed", "0")
    assert set(data) == {"images", "labels"}
    assert data["images"].shape == (20, 28, 28) and data["images"].dtype == np.float32
    assert data["labels"].dtype == np.int64
    assert data["labels"].tolist() == [d for d in range(10) for _ in range(2)]
    assert 0.0 <= data["images"].min() and data["images"].max() <= 1.0
    again, _ = _sample(trained, tmp_path / "again.npz", capsys, "--guidance", "5", "--per-class", "2", "--seed", "0")
    assert np.array_equal(again["images"], data["images"])
    assert list(tmp_path.glob(".*")) == [], "no temporary files left behind"


def test_default_is_part_b_sampler_on_the_site_model_with_the_sampling_seed(tmp_path, trained, capsys):
    """The defaults sample as the command always did: Part B's sampler, the model of the global
    seed, noise from (--seed, "cli/sample-digits"), 10 of each digit at the course's guidance."""
    from diffusion_lab.experiments import partb, partb_models, partb_training
    from diffusion_lab.experiments.partb_sampling import images_per_batch, partb_noise_model, sample_digits
    from diffusion_lab.mnist.ddpm import class_labels
    from diffusion_lab.profiles import COURSE_GUIDANCE
    from diffusion_lab.runcache.context import BuildContext
    from diffusion_lab.seeding import make_generator

    data, err = _sample(trained, tmp_path / "s.npz", capsys, "--seed", "3")
    ctx = BuildContext.from_env(profile="tiny", seed=0, cache_dir=trained)
    run = partb_training.ddpm_training(ctx, conditional=True)
    assert run.hit
    model = partb_noise_model(partb_models.load_ddpm(ctx, run), partb_models.ddpm_schedule(run), ctx.device)
    expected = sample_digits(model, make_generator(3, "cli/sample-digits"), labels=class_labels(10),
                             guidance_scale=COURSE_GUIDANCE,
                             batch_size=images_per_batch(partb.showcase(ctx).sample_batch, guided=True))
    assert np.array_equal(data["images"], expected.samples[:, 0].clamp(0, 1).numpy())
    assert data["labels"].tolist() == class_labels(10).tolist()
    assert f"train seed 0, cached, key {run.key[:12]}" in _line(err, "model: class-conditioned DDPM")
    sampler = _line(err, "sampler:")
    assert sampler == f"sampler: Part B's, all {T} of T = {T} timesteps, fixed variance b_t (fixed_large)"
    assert "sampling seed 3" in _line(err, "sampling:")


def test_seed_draws_new_noise_from_the_same_model_and_never_trains(tmp_path, trained, capsys, monkeypatch):
    first, err_first = _sample(trained, tmp_path / "a.npz", capsys, "--seed", "0", "--per-class", "2")
    _no_training(monkeypatch)
    second, err_second = _sample(trained, tmp_path / "b.npz", capsys, "--seed", "1", "--per-class", "2")
    model = _line(err_first, "model:")
    assert "train seed 0, cached" in model and _line(err_second, "model:") == model
    assert "training the" not in err_second
    assert not np.array_equal(first["images"], second["images"])
    assert np.array_equal(first["labels"], second["labels"])


def test_train_seed_trains_another_model_and_says_so_first(tmp_path, trained, capsys, monkeypatch):
    base, err_base = _sample(trained, tmp_path / "base.npz", capsys, "--per-class", "1")
    said_before_training = []
    train = training.train_ddpm

    def spy(*args, **kwargs):
        said_before_training.append(capsys.readouterr().err)
        return train(*args, **kwargs)

    monkeypatch.setattr(training, "train_ddpm", spy)
    other, err_train = _sample(trained, tmp_path / "other.npz", capsys, "--per-class", "1", "--train-seed", "1")
    assert len(said_before_training) == 1
    said = _line(said_before_training[0], "training the class-conditioned DDPM of the tiny profile for train seed 1")
    assert "2 epochs over 512 MNIST digits, 1,024 seen in batches of 64" in said
    model = _line(err_train, "model:")
    assert "train seed 1, trained now" in model
    assert model.split("key ")[1] != _line(err_base, "model:").split("key ")[1], "another training run"
    assert not np.array_equal(base["images"], other["images"]), "same noise, another model"

    # Cached now, and the default train seed is the build's: $DIFFUSION_LAB_SEED.
    _no_training(monkeypatch)
    monkeypatch.setenv("DIFFUSION_LAB_SEED", "1")
    again, err_again = _sample(trained, tmp_path / "again.npz", capsys, "--per-class", "1")
    assert _line(err_again, "model:") == model.replace("trained now", "cached")
    assert "training the" not in err_again
    assert np.array_equal(again["images"], other["images"])


def _count_network_calls(monkeypatch) -> list[int]:
    """The timesteps of every network call from now on (training refused): a list that fills as sampling runs."""
    calls = []
    predict = MnistBackend.predict

    def counted(self, x_t, t, condition):
        calls.append(int(t))
        return predict(self, x_t, t, condition)

    monkeypatch.setattr(MnistBackend, "predict", counted)
    _no_training(monkeypatch)
    return calls


@pytest.mark.parametrize("model", ["class", "time"])
@pytest.mark.parametrize(
    "steps, taken, stride",
    [(None, T, 1), (T, T, 1), (5, 5, 4), (7, 7, 3), (15, 10, 2), (1, 1, T)],
)
def test_steps_is_the_number_of_network_evaluations(model, steps, taken, stride, tmp_path, trained, capsys,
                                                    monkeypatch):
    """One batch of samples: one network call a step (CFG's two passes are one batch)."""
    calls = _count_network_calls(monkeypatch)
    options = ["--model", model, *(["--per-class", "1"] if model == "class" else ["--num", "10"])]
    data, err = _sample(trained, tmp_path / "s.npz", capsys, *options, *(["--steps", str(steps)] if steps else []))
    assert data["images"].shape == (10, 28, 28)
    assert len(calls) == taken
    assert calls == list(range((T - 1) // stride * stride, -1, -stride))
    sampler = _line(err, "sampler:")
    if steps is None:
        assert sampler.startswith(f"sampler: Part B's, all {T} of T = {T}") and sampler.endswith("(fixed_large)")
    else:
        assert sampler.startswith(f"sampler: Part A's strided loop, {taken} of T = {T} timesteps")
        assert f"(stride {stride})" in sampler and sampler.endswith("fixed posterior variance")
        assert (f"no stride takes exactly {steps} steps" in sampler) == (taken != steps)


@pytest.mark.parametrize("model", ["class", "time"])
def test_corrector_snr_adds_a_langevin_evaluation_after_every_step_but_the_last(model, tmp_path, trained, capsys,
                                                                                 monkeypatch):
    calls = _count_network_calls(monkeypatch)
    options = ["--model", model, *(["--per-class", "1"] if model == "class" else ["--num", "10"]), "--steps", "5"]
    plain, _ = _sample(trained, tmp_path / "plain.npz", capsys, *options)
    calls.clear()
    corrected, err = _sample(trained, tmp_path / "pc.npz", capsys, *options, "--corrector-snr", "0.16")
    # the predictor at 16, 12, 8, 4, 0 (stride 4) and a corrector at each t' it lands on but -1
    assert calls == [16, 12, 12, 8, 8, 4, 4, 0, 0]
    assert "a Langevin corrector step (r = 0.16) after each but the last: 9 network evaluations per sample" in \
        _line(err, "sampler:")
    assert corrected["images"].shape == plain["images"].shape
    assert not np.allclose(corrected["images"], plain["images"])


def test_the_pages_scores_sample_every_checkpoint_and_the_last_also_with_each_addition(trained):
    from diffusion_lab.experiments import partb
    from diffusion_lab.profiles import get_profile
    from diffusion_lab.runcache.context import BuildContext

    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0, cache_dir=trained,
                       force=False)
    show = get_profile("tiny").showcase
    rows = partb.time_ddpm_scores(ctx).metrics["rows"]
    steps, half = show.score_steps, -(-show.score_steps // 2)
    assert [(r["epoch"], r["steps"], r["corrector_snr"], r["start"], r["evaluations"]) for r in rows] == [
        (1, steps, None, "noise", steps), (2, steps, None, "noise", steps),
        (2, half, show.score_corrector_snr, "noise", 2 * half - 1), (2, steps, None, "matched", steps)]
    same_noise = [r for r in rows if r["epoch"] == 2]
    distances = {r["frechet_distance"] for r in same_noise}
    assert len(distances) == 3, "each sampler draws other samples"


def test_start_matched_draws_other_digits_from_the_same_noise_and_says_so(tmp_path, trained, capsys):
    plain, _ = _sample(trained, tmp_path / "plain.npz", capsys, "--model", "time", "--num", "10", "--steps", "5")
    matched, err = _sample(trained, tmp_path / "matched.npz", capsys, "--model", "time", "--num", "10", "--steps", "5",
                           "--start", "matched")
    assert "from the matched start" in _line(err, "sampler:")
    assert matched["images"].shape == plain["images"].shape == (10, 28, 28)
    assert not np.allclose(matched["images"], plain["images"])


def test_the_cli_offers_the_starts_the_sampler_knows():
    from diffusion_lab.cli import build_parser
    from diffusion_lab.experiments.partb_sampling import START_KINDS

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    start = next(a for a in commands.choices["sample-digits"]._actions if a.dest == "start")
    assert tuple(start.choices) == START_KINDS


def test_steps_on_the_course_schedule_never_exceed_n_and_are_exact_when_n_divides_t():
    """--steps N on T = 300: the smallest stride whose strided loop takes at most N steps."""
    from diffusion_lab.experiments.partb_sampling import partb_noise_model
    from diffusion_lab.mnist.ddpm import DDPMSchedule
    from diffusion_lab.mnist.unet import TimeConditionalUNet

    unet, schedule = TimeConditionalUNet(1, 8), DDPMSchedule(300)
    counts = {}
    for n in range(1, 301):
        model = partb_noise_model(unet, schedule, precision="fp32", num_steps=n)
        steps = model.strided_timesteps()
        assert model.variance_type == "fixed_small" and steps[-1] == 0 and len(steps) <= n
        assert steps == list(range(steps[0], -1, -model.stride))
        if model.stride > 1:  # one stride less would take more than n steps
            assert len(range((300 - 1) // (model.stride - 1) * (model.stride - 1), -1, -(model.stride - 1))) > n
        counts[n] = len(steps)
    assert all(counts[n] == n for n in range(1, 301) if 300 % n == 0)
    assert counts[299] == counts[151] == 150 and counts[40] == 38
    for bad in (0, 301):
        with pytest.raises(ValueError, match="num_steps must lie in 1..300"):
            partb_noise_model(unet, schedule, num_steps=bad)


def test_steps_changes_the_sampler(tmp_path, trained, capsys):
    full, _ = _sample(trained, tmp_path / "full.npz", capsys, "--per-class", "1", "--steps", str(T))
    default, _ = _sample(trained, tmp_path / "default.npz", capsys, "--per-class", "1")
    assert not np.array_equal(full["images"], default["images"]), "posterior variance, not fixed_large"


def test_time_model_writes_num_images_and_no_labels(tmp_path, trained, capsys, monkeypatch):
    _no_training(monkeypatch)
    data, err = _sample(trained, tmp_path / "t.npz", capsys, "--model", "time", "--num", "7", "--seed", "2")
    assert set(data) == {"images"}
    assert data["images"].shape == (7, 28, 28) and data["images"].dtype == np.float32
    assert 0.0 <= data["images"].min() and data["images"].max() <= 1.0
    assert "time-conditioned DDPM, tiny profile, train seed 0, cached" in _line(err, "model:")
    assert _line(err, "sampling:") == "sampling: 7 digits, sampling seed 2"
    other, _ = _sample(trained, tmp_path / "u.npz", capsys, "--model", "time", "--num", "7", "--seed", "3")
    assert not np.array_equal(data["images"], other["images"])


@pytest.mark.parametrize("model", ["fm-class", "fm-time"])
def test_flow_models_write_digits_with_their_own_conventions(model, tmp_path, trained, capsys, monkeypatch):
    """The flow-matching models write what the DDPMs write (fm-class: labels too), from the cached
    training run of train seed 0; --seed draws other noise from the same model."""
    _no_training(monkeypatch)
    options = ["--model", model, *(["--per-class", "2"] if model == "fm-class" else ["--num", "7"])]
    data, err = _sample(trained, tmp_path / "a.npz", capsys, *options, "--seed", "4")
    count = 20 if model == "fm-class" else 7
    assert data["images"].shape == (count, 28, 28) and data["images"].dtype == np.float32
    assert 0.0 <= data["images"].min() and data["images"].max() <= 1.0
    assert set(data) == ({"images", "labels"} if model == "fm-class" else {"images"})
    if model == "fm-class":
        assert data["labels"].tolist() == [d for d in range(10) for _ in range(2)]
    kind = "class" if model == "fm-class" else "time"
    assert f"{kind}-conditioned flow-matching model, tiny profile, train seed 0, cached" in _line(err, "model:")
    assert _line(err, "sampler:") == ("sampler: flow matching, 5 Euler steps from t = 0 to 1, 5 network evaluations "
                                      "per sample (the profile's default)")
    again, _ = _sample(trained, tmp_path / "b.npz", capsys, *options, "--seed", "4")
    other, _ = _sample(trained, tmp_path / "c.npz", capsys, *options, "--seed", "5")
    assert np.array_equal(again["images"], data["images"])
    assert not np.array_equal(other["images"], data["images"])


@pytest.mark.parametrize("model", ["fm-class", "fm-time"])
@pytest.mark.parametrize("sampler, steps, calls", [("euler", 1, 1), ("euler", 7, 7), ("heun", 1, 2), ("heun", 3, 6)])
def test_flow_steps_and_sampler_set_the_network_evaluations(model, sampler, steps, calls, tmp_path, trained, capsys,
                                                            monkeypatch):
    """One batch: Euler evaluates the network once a step, Heun twice (CFG's halves are one call)."""
    from diffusion_lab.experiments.partb_flow_sampling import FlowModel

    times = []
    predict = FlowModel.predict

    def counted(self, x, t, condition=None):
        times.append(t)
        return predict(self, x, t, condition)

    monkeypatch.setattr(FlowModel, "predict", counted)
    _no_training(monkeypatch)
    options = ["--model", model, *(["--per-class", "1"] if model == "fm-class" else ["--num", "10"])]
    data, err = _sample(trained, tmp_path / "s.npz", capsys, *options, "--sampler", sampler, "--steps", str(steps))
    assert data["images"].shape == (10, 28, 28)
    assert len(times) == calls
    assert times[0] == 0.0 and all(0.0 <= t <= 1.0 for t in times)
    assert _line(err, "sampler:") == (f"sampler: flow matching, {steps} {sampler.capitalize()} steps from t = 0 to 1, "
                                      f"{calls} network evaluations per sample")


def test_heun_and_euler_draw_different_digits_from_the_same_noise(tmp_path, trained, capsys):
    euler, _ = _sample(trained, tmp_path / "e.npz", capsys, "--model", "fm-time", "--num", "5", "--steps", "4")
    heun, _ = _sample(trained, tmp_path / "h.npz", capsys, "--model", "fm-time", "--num", "5", "--steps", "4",
                      "--sampler", "heun")
    assert not np.array_equal(euler["images"], heun["images"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--per-class", "0"], "must be at least 1"),
        (["--guidance", "lots"], "invalid float value"),
        (["--guidance", "nan"], "must be a finite number"),
        (["--per-class", str(10**9)], "over the 1 GiB limit"),
        (["--seed", "-1"], "--seed: must lie in 0..2**63-1"),
        (["--train-seed", "-1"], "--train-seed: must lie in 0..2**63-1"),
        (["--train-seed", str(2**63)], "--train-seed: must lie in 0..2**63-1"),
        (["--train-seed", "one"], "--train-seed: invalid int value"),
        (["--profile", "huge"], "invalid choice"),
        (["--model", "unet"], "argument --model: invalid choice: 'unet'"),
        (["--steps", "0"], "--steps: must be at least 1, got 0"),
        (["--steps", "ten"], "--steps: invalid int value"),
        (["--steps", str(T + 1)], f"--steps must lie in 1..{T}: the class-conditioned DDPM of the tiny profile has "
                                  f"T = {T} timesteps, got {T + 1}"),
        (["--model", "time", "--steps", "1000"], "the time-conditioned DDPM of the tiny profile has T = 20"),
        (["--model", "time", "--num", "0"], "--num: must be at least 1"),
        (["--model", "time", "--num", str(MAX_NUM + 1)], f"must be at most {MAX_NUM}"),
        (["--model", "time", "--num", str(MAX_NUM + 1)], "over the 1 GiB limit"),
        (["--model", "time", "--guidance", "3"], "--guidance belongs to --model class or fm-class, not --model time "
                                                 "(which takes --num, --corrector-snr and --start)"),
        (["--start", "matched"], "--start belongs to --model time, not --model class"),
        (["--model", "fm-time", "--start", "matched"], "--start belongs to --model time, not --model fm-time"),
        (["--model", "time", "--start", "mean"], "argument --start: invalid choice: 'mean'"),
        (["--model", "time", "--per-class", "2"], "--per-class belongs to --model class or fm-class, not --model time"),
        (["--num", "7"], "--num belongs to --model time or fm-time, not --model class (which takes --per-class, "
                         "--guidance and --corrector-snr)"),
        (["--model", "time", "--corrector-snr", "0"], "--corrector-snr: must lie in (0, 1]"),
        (["--corrector-snr", "2"], "--corrector-snr: must lie in (0, 1]"),
        (["--corrector-snr", "inf"], "--corrector-snr: must be a finite number"),
        (["--model", "fm-time", "--corrector-snr", "0.16"], "--corrector-snr belongs to --model class or time, not "
                                                            "--model fm-time"),
        (["--sampler", "heun"], "--sampler belongs to --model fm-class or fm-time, not --model class"),
        (["--model", "time", "--sampler", "euler"], "--sampler belongs to --model fm-class or fm-time, not --model time"),
        (["--model", "fm-class", "--sampler", "rk4"], "argument --sampler: invalid choice: 'rk4'"),
        (["--model", "fm-time", "--guidance", "3"], "--guidance belongs to --model class or fm-class, not --model "
                                                    "fm-time (which takes --num and --sampler)"),
        (["--model", "fm-time", "--per-class", "2"], "--per-class belongs to --model class or fm-class"),
        (["--model", "fm-class", "--num", "7"], "--num belongs to --model time or fm-time, not --model fm-class"),
        (["--model", "fm-time", "--steps", "0"], "--steps: must be at least 1, got 0"),
        (["--model", "fm-time", "--steps", "1001"], "--steps must lie in 1..1000 for a flow-matching model"),
        (["--model", "fm-class", "--num", str(MAX_NUM + 1)], "over the 1 GiB limit"),
        (["--out", "samples.txt"], "must end in .npz"),
        (["--out", "/no/such/folder/s.npz"], "does not exist"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    cache = tmp_path / "cache"
    out = tmp_path / "s.npz"
    tail = ["--profile", "tiny", "--cache-dir", str(cache)] + ([] if "--out" in argv else ["--out", str(out)])
    assert main(["sample-digits", *argv, *tail]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert not list(cache.rglob("runs/*")), "refused before any training"


def test_a_bad_global_seed_setting_is_one_line(tmp_path, capsys, monkeypatch):
    """Without --train-seed the model is the build's: its $DIFFUSION_LAB_SEED is read, and checked."""
    monkeypatch.setenv("DIFFUSION_LAB_SEED", "-3")
    out = tmp_path / "s.npz"
    assert main(["sample-digits", "--profile", "tiny", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad build setting DIFFUSION_LAB_SEED='-3'" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_unknown_command_is_one_line(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert "invalid choice" in err and len(err.splitlines()) == 1
