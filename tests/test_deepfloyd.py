"""The DeepFloyd IF backend on a tiny random-weight IF-shaped pipeline saved to a temp folder.

The real weights are gated and never downloaded here, so everything runs through the real
loading path (`from_pretrained` on a folder written by `save_pretrained`) with a model of the
same classes and configs, a few thousand times smaller.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion_lab import editing, illusions, sampling, schedule
from diffusion_lab.backends.base import NoiseModel, UnknownPrompt
from diffusion_lab.backends.deepfloyd import DeepFloydBackend, DeepFloydSettings, WeightsUnavailable, check_settings
from diffusion_lab.backends.deepfloyd_prompts import PromptEmbeddings
from diffusion_lab.backends.deepfloyd_weights import weights_errors_as_unavailable
from diffusion_lab.backends.if_schedule import (
    IF_STAGE1_SCHEDULER_CONFIG,
    IF_STAGE2_IMAGE_NOISING_SCHEDULER_CONFIG,
    IF_STAGE2_SCHEDULER_CONFIG,
    alphas_cumprod_from_config,
    if_alphas_cumprod,
)
from diffusion_lab.backends.tiny_if import save_tiny_if_pipeline

PROMPTS = ("a rocket ship", "an oil painting of an old man", "a lithograph of a skull")
GUIDANCE = 7.0
SIZE = 16


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # A UNet this small is all thread start-up cost: one thread is several times faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_if(tmp_path_factory) -> DeepFloydSettings:
    folder = tmp_path_factory.mktemp("tiny_if")
    return save_tiny_if_pipeline(folder, seed=0, prompts=PROMPTS, stage1_size=SIZE, stage2_size=2 * SIZE)


@pytest.fixture(scope="module")
def backend(tiny_if) -> DeepFloydBackend:
    return DeepFloydBackend(tiny_if, device="cpu")


@pytest.fixture(scope="module")
def x0_clip(backend) -> schedule.X0Clip:
    return schedule.X0Clip.from_scheduler_config(backend.scheduler_config)


def _test_image() -> torch.Tensor:
    """A smooth, asymmetric picture in [-1, 1]: not flip-symmetric, nothing random."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    return torch.stack([xs, ys, (xs * ys * 3).sin()]).unsqueeze(0) * 0.8


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- (e) the schedule as data ------------------------------------------------------------------


@pytest.mark.parametrize(
    "config", [IF_STAGE1_SCHEDULER_CONFIG, IF_STAGE2_SCHEDULER_CONFIG, IF_STAGE2_IMAGE_NOISING_SCHEDULER_CONFIG]
)
def test_if_schedule_alphas_cumprod_equal_ddpm_scheduler(config):
    expected = DDPMScheduler(**config).alphas_cumprod.to(torch.float64)
    assert torch.equal(alphas_cumprod_from_config(config), expected)


def test_backend_schedule_is_the_config_schedule(backend):
    assert torch.equal(backend.alphas_cumprod, if_alphas_cumprod())
    assert backend.alphas_cumprod.dtype == torch.float64 and backend.alphas_cumprod.shape == (1000,)
    for key, value in IF_STAGE1_SCHEDULER_CONFIG.items():
        assert backend.scheduler_config[key] == value, key


# --- the NoiseModel surface ----------------------------------------------------------------------


def test_backend_is_a_noise_model(backend):
    assert isinstance(backend, NoiseModel)
    assert backend.variance_type == "learned_range"
    assert backend.sample_shape == (3, SIZE, SIZE)
    assert backend.data_range == (-1.0, 1.0)
    assert backend.strided_timesteps() == list(range(990, -1, -30))
    assert backend.strided_timesteps()[-2:] == [30, 0]
    assert "TINY RANDOM-WEIGHT TEST MODEL" in backend.description
    assert backend.name == "tiny-random-if-seed0"


def test_predict_splits_the_six_channels(backend):
    x = torch.randn(2, 3, SIZE, SIZE, generator=_generator(0))
    condition = backend.encode(PROMPTS[0])
    out = backend.predict(x, 500, condition)
    with torch.no_grad():
        raw = backend.pipeline.unet(x, 500, encoder_hidden_states=condition.expand(2, -1, -1)).sample
    assert raw.shape == (2, 6, SIZE, SIZE)
    assert torch.equal(out.eps, raw[:, :3]) and torch.equal(out.variance, raw[:, 3:])
    # a batch-of-one condition broadcasts: each row is what that image alone would get
    alone = backend.predict(x[1:], 500, condition)
    torch.testing.assert_close(out.eps[1:], alone.eps, atol=1e-5, rtol=0)


# --- (a) the project's CFG loop against IFPipeline -----------------------------------------------


def _project_loop(backend, x0_clip, prompt: str, seed: int) -> torch.Tensor:
    """The project's CFG sample for `prompt`: (1, 3, SIZE, SIZE) in [-1, 1], the backend's dtype and device."""
    return sampling.sample(
        backend, 1, backend.encode(prompt), _generator(seed),
        guidance=GUIDANCE, uncond=backend.encode(""), x0_clip=x0_clip,
    )


def _pipeline_reference(backend, prompt: str, seed: int) -> torch.Tensor:
    return backend.pipeline(
        prompt_embeds=backend.encode(prompt),
        negative_prompt_embeds=backend.encode(""),
        timesteps=backend.strided_timesteps(),
        guidance_scale=GUIDANCE,
        generator=_generator(seed),
        output_type="pt",
    ).images


@pytest.mark.parametrize("seed", [0, 1])
def test_cfg_sampling_equals_if_pipeline(backend, x0_clip, seed):
    """Same noise, same steps, same thresholding: the project's CFG loop is IFPipeline's.

    It holds to float precision because sampling's CFG sends [uncond; cond] through the UNet as
    one batch, as the pipeline does: per image a CPU UNet differs by ~2.5e-6 between batch sizes
    1 and 2, and g = 7, x0_hat at t = 990 (/ sqrt(abar) ~ 0.014) and 34 steps of an untrained net
    amplify that to 4e-5..1e-4 (measured with two separate calls)."""
    expected = _pipeline_reference(backend, PROMPTS[0], seed)
    ours = _project_loop(backend, x0_clip, PROMPTS[0], seed)
    assert ours.shape == expected.shape == (1, 3, SIZE, SIZE)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)


# The fp16 check on CUDA asks for bitwise equality, because no looser tolerance means anything on
# this model: fp16 rounding, amplified by g = 7, x0_hat's division by sqrt(abar) (0.014 at t = 990)
# and 34 steps of an untrained UNet, moves the pipeline's own sample by 1.84..2.0 (max, images in
# [-1, 1]) between fp32 and fp16, as far as a sample from other noise lands (1.96..2.0; H200,
# seeds 0-2, measurements/2026-11-30-h200-full/if_fp16.json). Any other order of arithmetic would
# show as a difference of that size; the same order gives the same bits, as measured there (3 of 3 seeds).


@pytest.fixture(scope="module")
def cuda_fp16_backend(tiny_if) -> DeepFloydBackend:
    return DeepFloydBackend(tiny_if, device="cuda", dtype=torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: compares float16 sampling on CUDA")
@pytest.mark.parametrize("seed", [0, 1])
def test_cfg_sampling_equals_if_pipeline_fp16_cuda(cuda_fp16_backend, seed):
    """The CFG loop is IFPipeline's in float16 on CUDA, as IF is run: the same noise, steps and
    thresholding give the same bits."""
    backend = cuda_fp16_backend
    x0_clip = schedule.X0Clip.from_scheduler_config(backend.scheduler_config)
    expected = _pipeline_reference(backend, PROMPTS[0], seed)
    ours = _project_loop(backend, x0_clip, PROMPTS[0], seed)
    assert ours.dtype == expected.dtype == torch.float16 and ours.device.type == expected.device.type == "cuda"
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)


def test_stock_pipeline_sample_and_upsample(backend):
    images = backend.sample_with_pipeline(PROMPTS[0], generator=_generator(0), num_images=2, num_inference_steps=4)
    assert images.shape == (2, 3, SIZE, SIZE)
    again = backend.sample_with_pipeline(PROMPTS[0], generator=_generator(0), num_images=2, num_inference_steps=4)
    assert torch.equal(images, again)
    up = backend.upsample(images, PROMPTS[0], _generator(1), num_inference_steps=3)
    assert up.shape == (2, 3, 2 * SIZE, 2 * SIZE) and torch.isfinite(up).all()
    assert torch.equal(up, backend.upsample(images, backend.encode(PROMPTS[0]), _generator(1), num_inference_steps=3))


# --- (b) the Part A algorithms on this backend ---------------------------------------------------


def _twice(run):
    first, second, other = run(5), run(5), run(6)
    assert torch.equal(first, second), "same seed, different bytes"
    assert not torch.equal(first, other), "another seed, same bytes"
    assert torch.isfinite(first).all()
    return first


def test_sdedit_is_repeatable(backend, x0_clip):
    condition = backend.encode(PROMPTS[0])
    out = _twice(
        lambda seed: editing.sdedit(
            backend, _test_image(), 10, condition, _generator(seed), guidance=GUIDANCE, x0_clip=x0_clip
        )
    )
    assert out.shape == (1, 3, SIZE, SIZE)


def test_inpainting_is_repeatable_and_keeps_the_known_pixels(backend, x0_clip):
    image = _test_image()
    mask = torch.zeros(1, 1, SIZE, SIZE)
    mask[..., 4:12, 4:12] = 1
    out = _twice(
        lambda seed: editing.inpaint(
            backend, image, mask, backend.encode(PROMPTS[0]), _generator(seed), guidance=GUIDANCE, x0_clip=x0_clip
        )
    )
    keep = (mask == 0).expand_as(image)
    assert torch.equal(out[keep], image[keep])


def test_visual_anagram_is_repeatable(backend, x0_clip):
    first, second = backend.encode(PROMPTS[1]), backend.encode(PROMPTS[2])
    _twice(
        lambda seed: illusions.visual_anagram(
            backend, 1, first, second, _generator(seed), guidance=GUIDANCE, x0_clip=x0_clip
        )
    )


def test_hybrid_image_is_repeatable(backend, x0_clip):
    far, near = backend.encode(PROMPTS[2]), backend.encode(PROMPTS[1])
    _twice(
        lambda seed: illusions.hybrid_image(backend, 1, far, near, _generator(seed), guidance=GUIDANCE, x0_clip=x0_clip)
    )


# --- prompts -------------------------------------------------------------------------------------


def test_unknown_prompt_lists_the_files_prompts(backend):
    with pytest.raises(UnknownPrompt) as error:
        backend.encode("a photo of a purple zebra")
    message = str(error.value)
    assert "a photo of a purple zebra" in message
    for prompt in PROMPTS:
        assert repr(prompt) in message
    assert "''" in message  # the unconditional prompt is in the file too


def test_embeddings_shape_and_unconditional(backend):
    uncond = backend.encode("")
    assert uncond.shape == (1, 77, 32)
    assert not torch.equal(uncond, backend.encode(PROMPTS[0]))
    assert backend.encode(PROMPTS[0]) is not None and backend.prompts(PROMPTS[0]) is backend.prompts(PROMPTS[0])


def test_t5_encoder_extends_the_file_and_caches_on_disk(tiny_if, backend, tmp_path):
    with_t5 = DeepFloydBackend(
        tiny_if, device="cpu", text_encoder="t5", prompt_embeds_file=None, embeddings_cache_dir=str(tmp_path)
    )
    # the file was written by the same tiny T5, so both sources agree on its prompts
    assert torch.equal(with_t5.encode(PROMPTS[0]), backend.encode(PROMPTS[0]))
    new = with_t5.encode("a photo of a purple zebra")
    assert new.shape == (1, 77, 32)
    assert len(list(tmp_path.glob("*.pt"))) == 2
    # a later build without T5 finds the cached embedding
    reread = PromptEmbeddings(tiny_if.stage1, disk_cache=tmp_path)
    assert torch.equal(reread("a photo of a purple zebra"), new)


def test_prompt_embeddings_call_the_encoder_once_per_prompt(tmp_path):
    calls = []

    def encoder(prompt):
        calls.append(prompt)
        return torch.full((1, 77, 4), float(len(prompt)))

    prompts = PromptEmbeddings("some/model", table={"": torch.zeros(77, 4)}, encoder=encoder, disk_cache=tmp_path)
    assert prompts("").shape == (1, 77, 4)  # (tokens, dim) entries are accepted
    assert torch.equal(prompts("a b"), prompts("a b"))
    assert calls == ["a b"]


# --- (c) missing weights --------------------------------------------------------------------------


def test_missing_folder_raises_weights_unavailable(tiny_if, tmp_path):
    with pytest.raises(WeightsUnavailable) as error:
        DeepFloydBackend(tiny_if, stage1=str(tmp_path / "no_such_folder"))
    assert "does not exist" in str(error.value) and "save_pretrained" in str(error.value)


def test_folder_without_model_index_raises_weights_unavailable(tiny_if, tmp_path):
    with pytest.raises(WeightsUnavailable, match="no model_index.json"):
        DeepFloydBackend(tiny_if, stage1=str(tmp_path))


def test_offline_hub_id_not_cached_raises_weights_unavailable(tiny_if, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as error:
        DeepFloydBackend(tiny_if, stage1="DeepFloyd/IF-I-XL-v1.0", hf_cache_dir=str(tmp_path))
    message = str(error.value)
    assert "DeepFloyd/IF-I-XL-v1.0" in message and "HF_HUB_OFFLINE" in message
    assert "license" in message and "hf auth login" in message and "DIFFUSION_LAB_IF_STAGE1" in message


def test_stage2_is_checked_before_stage1_loads(tiny_if, tmp_path, monkeypatch):
    import diffusers

    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were read before every source was checked")

    monkeypatch.setattr(diffusers.IFPipeline, "from_pretrained", must_not_load)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="stage II"):
        DeepFloydBackend(tiny_if, stage2="DeepFloyd/IF-II-L-v1.0", hf_cache_dir=str(tmp_path))


def _fake_hub_error(cls, message):
    error = cls.__new__(cls)  # the real constructor wants an HTTP response
    Exception.__init__(error, message)
    return error


def test_gated_hub_id_raises_weights_unavailable(tiny_if, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    def gated(repo_id, **kwargs):
        raise _fake_hub_error(GatedRepoError, f"403 Cannot access gated repo {repo_id}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "auth_check", gated)
    with pytest.raises(WeightsUnavailable, match="gated") as error:
        DeepFloydBackend(tiny_if, stage1="DeepFloyd/IF-I-XL-v1.0", hf_cache_dir=str(tmp_path))
    assert "https://huggingface.co/DeepFloyd/IF-I-XL-v1.0" in str(error.value)


def test_load_errors_map_onto_weights_unavailable():
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    raised = [
        _fake_hub_error(GatedRepoError, "403"),
        _fake_hub_error(RepositoryNotFoundError, "404"),
        LocalEntryNotFoundError("not in cache"),
        OSError("Cannot load model x: the model is not fully cached locally"),
    ]
    for error in raised:
        with pytest.raises(WeightsUnavailable):
            with weights_errors_as_unavailable("owner/model", role="stage I", setting="SETTING"):
                raise error
    with pytest.raises(PermissionError):  # unrelated errors pass through untouched
        with weights_errors_as_unavailable("owner/model", role="stage I", setting="SETTING"):
            raise PermissionError("disk")


def test_settings_round_trip_through_the_environment(tiny_if):
    assert DeepFloydSettings.from_env(tiny_if.to_env()) == tiny_if
    settings = DeepFloydSettings.from_env({"DIFFUSION_LAB_IF_STAGE2": "none", "DIFFUSION_LAB_IF_CPU_OFFLOAD": "1"})
    assert settings.stage2 is None and settings.cpu_offload and settings.stage1 == "DeepFloyd/IF-I-XL-v1.0"
    tuned = replace(tiny_if, upsample_figures=True, stage2_steps=3)
    assert DeepFloydSettings.from_env(tuned.to_env()) == tuned
    for bad in ("0", "-2", "many"):
        with pytest.raises(ValueError, match="DIFFUSION_LAB_IF_STAGE2_STEPS must be a positive whole number"):
            DeepFloydSettings.from_env({"DIFFUSION_LAB_IF_STAGE2_STEPS": bad})


# --- the order of the checks, and what they say ---------------------------------------------------


def _offline_without_cache(monkeypatch, tmp_path) -> str:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return str(tmp_path / "empty-hf-cache")


def test_no_settings_complain_about_the_weights_first(tmp_path, monkeypatch):
    """The defaults (hub ids, no prompt-embeddings file, no T5 setting) on a machine without IF:
    the first complaint is the missing stage I weights, and it says both ways to give prompts."""
    cache = _offline_without_cache(monkeypatch, tmp_path)
    settings = DeepFloydSettings.from_env({}, hf_cache_dir=cache)
    assert settings.text_encoder == "auto" and settings.prompt_encoder == "t5"
    with pytest.raises(WeightsUnavailable) as error:
        check_settings(settings)
    message = str(error.value)
    assert message.startswith("DeepFloyd IF stage I weights 'DeepFloyd/IF-I-XL-v1.0'"), message
    assert "\n" not in message
    assert "DIFFUSION_LAB_IF_STAGE1" in message and "save_pretrained" in message  # a local weights folder
    assert "T5 text encoder" in message and "DIFFUSION_LAB_IF_PROMPT_EMBEDS" in message  # or a file


def test_weights_are_checked_before_the_prompt_source(tmp_path, monkeypatch):
    """Even a prompt setting that is wrong on its own (no encoder, no file) waits for the weights."""
    cache = _offline_without_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsUnavailable, match="stage I weights"):
        DeepFloydBackend(DeepFloydSettings(text_encoder="none", hf_cache_dir=cache), device="cpu")


def test_stage2_weights_are_checked_before_the_prompt_source(tiny_if, tmp_path, monkeypatch):
    cache = _offline_without_cache(monkeypatch, tmp_path)
    with pytest.raises(WeightsUnavailable, match="stage II"):
        check_settings(replace(tiny_if, text_encoder="none", prompt_embeds_file=None,
                               stage2="DeepFloyd/IF-II-L-v1.0", hf_cache_dir=cache))


def test_without_a_file_the_t5_of_the_weights_folder_encodes_the_prompts(tiny_if, backend):
    """diffusers' default for IF: the T5 encoder saved with stage I, found in the same folder."""
    default = DeepFloydBackend(replace(tiny_if, text_encoder="auto", prompt_embeds_file=None), device="cpu",
                               stage2=None)
    assert default.prompts.encoder is not None and default.prompts.table == {}
    # the tiny file holds what the tiny T5 makes of its prompts: both sources agree
    assert torch.equal(default.encode(PROMPTS[1]), backend.encode(PROMPTS[1]))


def test_with_a_file_auto_loads_no_text_encoder(tiny_if):
    settings = replace(tiny_if, text_encoder="auto")
    assert settings.prompt_encoder == "none"
    with pytest.raises(UnknownPrompt):
        DeepFloydBackend(settings, device="cpu", stage2=None).encode("a photo of a purple zebra")


@pytest.fixture(scope="module")
def weights_without_t5(tiny_if, tmp_path_factory):
    """The tiny stage I saved without its text encoder and tokenizer (as `text_encoder=None` saves it)."""
    folder = tmp_path_factory.mktemp("no_t5") / "stage_1"
    shutil.copytree(tiny_if.stage1, folder)
    shutil.rmtree(folder / "text_encoder")
    shutil.rmtree(folder / "tokenizer")
    return str(folder)


def test_weights_without_t5_and_no_file_say_both_ways(tiny_if, weights_without_t5):
    with pytest.raises(WeightsUnavailable) as error:
        DeepFloydBackend(tiny_if, stage1=weights_without_t5, prompt_embeds_file=None, text_encoder="auto")
    message = str(error.value)
    assert "no T5 text encoder" in message and "text_encoder/config.json" in message
    assert "DIFFUSION_LAB_IF_STAGE1" in message and "DIFFUSION_LAB_IF_PROMPT_EMBEDS" in message


def test_weights_without_t5_load_with_a_file(tiny_if, weights_without_t5, backend):
    loaded = DeepFloydBackend(tiny_if, stage1=weights_without_t5, stage2=None, device="cpu")
    assert torch.equal(loaded.encode(PROMPTS[0]), backend.encode(PROMPTS[0]))


def test_no_prompt_source_says_both_ways(tiny_if):
    with pytest.raises(ValueError) as error:
        DeepFloydBackend(tiny_if, prompt_embeds_file=None, text_encoder="none")
    message = str(error.value)
    assert "prompt embeddings" in message
    assert "DIFFUSION_LAB_IF_TEXT_ENCODER" in message and "DIFFUSION_LAB_IF_PROMPT_EMBEDS" in message


def test_a_missing_prompt_embeddings_file_is_refused_before_loading(tiny_if, tmp_path):
    with pytest.raises(ValueError, match="DIFFUSION_LAB_IF_PROMPT_EMBEDS.*does not exist"):
        check_settings(replace(tiny_if, prompt_embeds_file=str(tmp_path / "missing.pth")))


def test_an_unknown_text_encoder_mode_is_refused(tiny_if):
    with pytest.raises(ValueError, match="DIFFUSION_LAB_IF_TEXT_ENCODER must be one of auto, none, t5, t5-8bit"):
        check_settings(replace(tiny_if, text_encoder="bert"))


def test_pages_show_no_path_of_the_weights_folder(tiny_if, tmp_path):
    """Without a model card the description names the folder, never its absolute path."""
    folder = tmp_path / "my-if-weights"
    shutil.copytree(tiny_if.stage1, folder)
    (folder / "diffusion_lab.json").unlink()
    loaded = DeepFloydBackend(tiny_if, stage1=str(folder), stage2=None, device="cpu")
    assert "folder my-if-weights" in loaded.description and str(tmp_path) not in loaded.description
    assert "prompt_embeds.pth" in loaded.description


def test_auto_variant_loads_a_full_precision_folder(tiny_if):
    loaded = DeepFloydBackend(tiny_if, device="cpu", variant="auto", stage2=None)
    assert loaded.pipeline.unet.dtype == torch.float32
