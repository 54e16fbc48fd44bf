"""Finding model weights: a local directory, the Hugging Face cache, or a download.

Every loader in ovseg goes through :func:`resolve_weights`, so that a user without network gets
the same clear message, within seconds, for every model.
"""
from __future__ import annotations

import os
from pathlib import Path


class WeightsNotFoundError(RuntimeError):
    """The weights of a model are neither on disk nor downloadable."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One HEAD request to the hub endpoint through huggingface_hub's own HTTP client: seconds,
    where a failed download retries for ~45 s. Being the client downloads use, it honours the
    same settings (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, certificates, HF_ENDPOINT, a client
    factory set with ``huggingface_hub.set_client_factory``). Any HTTP answer below 500 counts
    as reachable; a connection, proxy or timeout error does not."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}:
        return False
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
        response = get_session().head(endpoint.rstrip("/") + "/", timeout=timeout)
        return response.status_code < 500
    except Exception:  # noqa: BLE001 - httpx/requests errors differ by huggingface_hub version
        return False


def _holds(folder: str, required: list[str | tuple[str, ...]] | None) -> bool:
    """Whether `folder` has a file for every entry of `required` (a tuple: for one of its globs)."""
    root = Path(folder)
    for entry in required or ():
        globs = (entry,) if isinstance(entry, str) else entry
        if not any(next(root.glob(g), None) is not None for g in globs):
            return False
    return True


def weights_help(model: str, repo_id: str, download_size: str, hint: str = "weights") -> str:
    """hint: the name of the option that takes the folder, `--HINT DIR` in the CLI; in Python,
    `weights=` of the create_* function (`HINT=` of `ovseg.Segmenter`)."""
    return (
        f"The weights of {model} ({repo_id}, about {download_size}) are not on this machine and "
        f"cannot be downloaded (no network, or HF_HUB_OFFLINE=1). Either run once with network "
        f"access (they are then kept in the Hugging Face cache), or copy the repository to a "
        f"folder, e.g. `hf download {repo_id} --local-dir DIR` on a machine with "
        f"network, and pass that folder: --{hint.replace('_', '-')} DIR on the command line, "
        f"weights='DIR' in Python"
        + ("." if hint == "weights" else f" ({hint}='DIR' for ovseg.Segmenter).")
    )


def resolve_weights(
    weights: str | os.PathLike | None,
    *,
    repo_id: str,
    model: str,
    download_size: str,
    allow_patterns: list[str] | None = None,
    required: list[str | tuple[str, ...]] | None = None,
    hint: str = "weights",
) -> str:
    """Return a local directory holding the model's files.

    weights: None for the official `repo_id`, another repo id, or a local directory.
    allow_patterns: the files worth downloading (a repo often holds several weight formats).
    required: globs a cached snapshot must match for it to be used as is (a tuple: any one of
        them); otherwise the files are downloaded. A snapshot filled earlier with other files
        (another stage of the same model, or a library fetching one file at a time) is
        therefore completed rather than returned half-empty.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_dir():
            return str(path)
        if path.exists() or str(weights).startswith((".", "/", "~")) or os.sep + os.sep in str(weights):
            raise WeightsNotFoundError(f"{model}: {weights} is not a directory of model files.")
        repo_id = str(weights)

    from huggingface_hub import snapshot_download

    try:  # the cache first: no network needed, and no time lost on one
        cached = snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True)
        if _holds(cached, required):
            return cached
    except Exception:
        pass
    if not _hub_reachable():
        raise WeightsNotFoundError(weights_help(model, repo_id, download_size, hint))
    try:
        return snapshot_download(repo_id, allow_patterns=allow_patterns)
    except Exception as err:  # auth, missing repo, broken connection: say which model and why
        raise WeightsNotFoundError(
            f"{weights_help(model, repo_id, download_size, hint)}\nDownload error: {err}"
        ) from err
