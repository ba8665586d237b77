"""Finding DeepFloyd IF's weights, and saying plainly what is missing when they are not there.

IF is gated on the Hugging Face hub: weights come only after accepting the license on the model
page and logging in. A build must learn that before it spends any time, and from one exception
that says what to do, not from a stack of hub errors. So sources are checked up front
(`check_weights_available`) and every hub error of the actual load is mapped onto the same
`WeightsUnavailable`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HUB_URL = "https://huggingface.co"


class WeightsUnavailable(RuntimeError):
    """DeepFloyd IF weights cannot be loaded; the message says which and how to get them."""


@dataclass(frozen=True)
class WeightsSource:
    """Where one pipeline's weights are: a local folder or a hub repo, and how to load them."""

    source: str
    is_folder: bool
    local_files_only: bool

    @property
    def path(self) -> Path:
        return Path(self.source).expanduser()


def hub_offline() -> bool:
    """Offline as the environment says now, not only as it said when huggingface_hub was imported."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any(str(f).strip().lower() in {"1", "true", "yes", "on"} for f in flags if f)


def looks_like_folder(source: str) -> bool:
    """A hub id is 'owner/name'; anything else that names a path is meant as a folder."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep != "/" and os.sep in source


def _how_to_get(source: str, role: str, setting: str, hint: str = "") -> str:
    return (
        f"To get {role} weights: accept the license on {HUB_URL}/{source} while logged in, run"
        " `hf auth login` (older huggingface_hub: `huggingface-cli login`) with a token of that"
        f" account, and load once while online so the hub cache holds it; or point {setting} at a"
        " local folder written by `pipeline.save_pretrained(folder)`." + (f" {hint}" if hint else "")
    )


def _folder_source(source: str, role: str, setting: str, hint: str = "") -> WeightsSource:
    folder = Path(source).expanduser()
    fix = (
        f"Point {setting} at a folder written by `pipeline.save_pretrained(folder)` (it holds"
        " model_index.json and one subfolder per component), or at a hub id such as"
        " DeepFloyd/IF-I-XL-v1.0." + (f" {hint}" if hint else "")
    )
    if not folder.is_dir():
        raise WeightsUnavailable(f"{role} weights folder {folder} does not exist. {fix}")
    if not (folder / "model_index.json").is_file():
        raise WeightsUnavailable(f"{role} weights folder {folder} has no model_index.json. {fix}")
    return WeightsSource(source, is_folder=True, local_files_only=True)


def _cached(repo_id: str, cache_dir: str | None, filename: str = "model_index.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir), str)


def check_weights_available(
    source: str, *, role: str, setting: str, cache_dir: str | None = None, hint: str = ""
) -> WeightsSource:
    """Where `source` loads from, or WeightsUnavailable before any weight is read; `hint` ends
    every message (e.g. where prompts come from once the weights are there).

    Offline: the hub cache must already hold the repo. Online and not cached: ask the hub
    whether this account may read it (gated, missing), so a download is not even started.
    """
    if looks_like_folder(source):
        return _folder_source(source, role, setting, hint)
    from huggingface_hub import auth_check
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if _cached(source, cache_dir):
        return WeightsSource(source, is_folder=False, local_files_only=hub_offline())
    if hub_offline():
        raise WeightsUnavailable(
            f"{role} weights {source!r} are not in the Hugging Face cache"
            f" ({cache_dir or 'the default HF cache'}) and HF_HUB_OFFLINE is set, so they cannot be"
            f" downloaded. {_how_to_get(source, role, setting, hint)}"
        )
    try:
        auth_check(source)
    except GatedRepoError as error:
        raise _gated(source, role, setting, hint) from error
    except RepositoryNotFoundError as error:
        raise _not_found(source, role, setting, hint) from error
    except Exception as error:  # the hub client's own network errors (httpx) are not OSErrors
        raise WeightsUnavailable(
            f"{role} weights {source!r} are not cached and the Hugging Face hub cannot be reached"
            f" ({type(error).__name__}: {error}). {_how_to_get(source, role, setting, hint)}"
        ) from error
    return WeightsSource(source, is_folder=False, local_files_only=False)


TEXT_ENCODER_FILES = ("text_encoder/config.json", "tokenizer/tokenizer_config.json")


def check_text_encoder_available(
    source: WeightsSource, *, setting: str, alternative: str, cache_dir: str | None = None
) -> None:
    """WeightsUnavailable unless stage I's weights at `source` hold the T5 text encoder and its
    tokenizer (what `save_pretrained` writes to text_encoder/ and tokenizer/); the message names
    `alternative`, the other way to get prompt embeddings. A hub id that may still be downloaded
    passes: the download says what is missing."""
    if source.is_folder:
        missing = [name for name in TEXT_ENCODER_FILES if not (source.path / name).is_file()]
        where = f"folder {source.path}"
    elif source.local_files_only:
        missing = [name for name in TEXT_ENCODER_FILES if not _cached(source.source, cache_dir, name)]
        where = f"{source.source!r} in the Hugging Face cache"
    else:
        return
    if missing:
        raise WeightsUnavailable(
            f"DeepFloyd IF stage I weights ({where}) hold no T5 text encoder ({', '.join(missing)}"
            " missing), which encodes the prompts when no prompt-embeddings file is given. Either point"
            f" {setting} at weights saved with their text encoder and tokenizer"
            " (`IFPipeline.from_pretrained(id).save_pretrained(folder)` keeps them), or"
            f" {alternative}."
        )


def _gated(source: str, role: str, setting: str, hint: str = "") -> WeightsUnavailable:
    return WeightsUnavailable(
        f"{role} weights {source!r} are gated and this account has not been granted access."
        f" {_how_to_get(source, role, setting, hint)}"
    )


def _not_found(source: str, role: str, setting: str, hint: str = "") -> WeightsUnavailable:
    return WeightsUnavailable(
        f"{role} weights {source!r}: no such repository on the hub, or it is private to another"
        f" account. Check the id. {_how_to_get(source, role, setting, hint)}"
    )


@contextmanager
def weights_errors_as_unavailable(source: str, *, role: str, setting: str):
    """Maps the hub's and diffusers' loading errors onto WeightsUnavailable."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    try:
        yield
    except GatedRepoError as error:
        raise _gated(source, role, setting) from error
    except RepositoryNotFoundError as error:
        raise _not_found(source, role, setting) from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, EntryNotFoundError) as error:
        raise WeightsUnavailable(
            f"{role} weights {source!r} are incomplete or not cached, and cannot be fetched"
            f" ({type(error).__name__}: {error}). {_how_to_get(source, role, setting)}"
        ) from error
    except ValueError as error:
        if "no such modeling files are available" not in str(error):
            raise
        raise WeightsUnavailable(
            f"{role} weights {source!r} lack the requested variant: {error}"
            " Load without `variant` or save the folder with that variant."
        ) from error
    except OSError as error:
        # diffusers re-raises a failed offline fallback as a bare EnvironmentError.
        if "Cannot load model" not in str(error) and "does not appear to have" not in str(error):
            raise
        raise WeightsUnavailable(
            f"{role} weights {source!r} could not be loaded: {error} {_how_to_get(source, role, setting)}"
        ) from error
