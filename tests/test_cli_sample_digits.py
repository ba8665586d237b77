import numpy as np
import pytest

from diffusion_lab.cli import main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
    return str(tmp_path / "cache")


def test_sample_digits_writes_images_and_labels(tmp_path, cache):
    out = tmp_path / "samples.npz"
    argv = ["sample-digits", "--profile", "tiny", "--guidance", "5", "--per-class", "2", "--seed", "0",
            "--cache-dir", cache, "--out", str(out)]
    assert main(argv) == 0
    data = np.load(out)
    assert data["images"].shape == (20, 28, 28) and data["images"].dtype == np.float32
    assert data["labels"].dtype == np.int64
    assert data["labels"].tolist() == [d for d in range(10) for _ in range(2)]
    assert 0.0 <= data["images"].min() and data["images"].max() <= 1.0
    again = tmp_path / "again.npz"
    assert main(argv[:-1] + [str(again)]) == 0, "the second call reuses the cached checkpoint"
    assert np.array_equal(np.load(again)["images"], data["images"])
    assert list(tmp_path.glob(".*")) == [], "no temporary files left behind"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample-digits", "--per-class", "0"], "must be at least 1"),
        (["sample-digits", "--guidance", "lots"], "invalid float value"),
        (["sample-digits", "--guidance", "nan"], "must be a finite number"),
        (["sample-digits", "--per-class", str(10**9)], "over the 1 GiB limit"),
        (["sample-digits", "--seed", "-1"], "must lie in 0..2**63-1"),
        (["sample-digits", "--profile", "huge"], "invalid choice"),
        (["sample-digits", "--out", "samples.txt", "--profile", "tiny"], "must end in .npz"),
        (["sample-digits", "--out", "/no/such/folder/s.npz", "--profile", "tiny"], "does not exist"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, tmp_path, cache, capsys):
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "s.npz")]
    assert main(argv + ["--cache-dir", cache] if argv[0] == "sample-digits" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.npz").exists()
