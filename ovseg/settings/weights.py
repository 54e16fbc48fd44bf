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


def _as_choices(entry: str | tuple[str, ...]) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry)


def _matches(root: Path, glob: str) -> bool:
    return next(root.glob(glob), None) is not None


def _holds(folder: str, required: list[str | tuple[str, ...]] | None) -> bool:
    """Whether `folder` has a file for every entry of `required` (a tuple: for one of its globs)."""
    return not _lacking(Path(folder), required)


def _lacking(root: Path, required) -> list[tuple[str, ...]]:
    """The entries of `required` that `root` has no file for (each as its tuple of globs)."""
    return [c for c in map(_as_choices, required or ()) if not any(_matches(root, g) for g in c)]


def _quote(pattern: str) -> str:
    return f'"{pattern}"' if any(ch in pattern for ch in "*?[ ") else pattern


def download_command(repo_id: str, files: list[str], local_dir: str = "DIR") -> str:
    """The `hf download` command (huggingface_hub >= 1.0: one `--include` per pattern) that fetches
    exactly `files` (globs) of `repo_id` into `local_dir`."""
    return f"hf download {repo_id} --local-dir {local_dir} " + " ".join(f"--include {_quote(f)}" for f in files)


def weights_help(model: str, repo_id: str, download_size: str, hint: str = "weights",
                 files: list[str] | None = None) -> str:
    """hint: the name of the option that takes the folder, `--HINT DIR` in the CLI; in Python,
    `weights=` of the create_* function (`HINT=` of `ovseg.Segmenter`). files: the globs ovseg
    needs from the repository (None: the whole repository)."""
    command = download_command(repo_id, files) if files else f"hf download {repo_id} --local-dir DIR"
    return (
        f"The weights of {model} ({repo_id}, about {download_size}) are not on this machine and "
        f"cannot be downloaded (no network, or HF_HUB_OFFLINE=1). Either run once with network "
        f"access (they are then kept in the Hugging Face cache), or copy the files ovseg needs to a "
        f"folder on a machine with network (huggingface_hub >= 1.0; docs/weights.md lists them): "
        f"`{command}`, and pass that folder: --{hint.replace('_', '-')} DIR on the command line, "
        f"weights='DIR' in Python"
        + ("." if hint == "weights" else f" ({hint}='DIR' for ovseg.Segmenter).")
    )


def _describe(lacking: list[tuple[str, ...]]) -> str:
    return ", ".join(" or ".join(c) for c in lacking)


def resolve_weights(
    weights: str | os.PathLike | None,
    *,
    repo_id: str,
    model: str,
    download_size: str,
    required: list[str | tuple[str, ...]] | None = None,
    optional: list[str] | None = None,
    hint: str = "weights",
    hint_files: list[str] | None = None,
) -> str:
    """Return a local directory holding the model's files.

    weights: None for the official `repo_id`, another repo id, or a local directory.
    required: the files the model needs, as globs; an entry that is a tuple lists alternatives in
        order of preference (e.g. the fp16 file, then the fp32 one) and one of them is enough.
        A download asks for the first alternative of each entry, then, for the entries the
        repository lacks, for the next one, so no alternative is fetched beside a preferred one.
        A cached snapshot or a local folder is used as is when it holds every entry; a cached
        snapshot filled earlier with other files is completed. Whatever lacks an entry after all
        that fails here, with a message naming the file, never later in a library loader.
    optional: further globs downloaded when the repository has them (configs used for cache keys).
    hint_files: the globs the offline message's `hf download` command fetches (default: the first
        alternative of each required entry, then `optional`).
    """
    entries = [_as_choices(e) for e in required or ()]
    optional = list(optional or ())
    if hint_files is None:
        hint_files = [c[0] for c in entries] + optional
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_dir():
            lacking = _lacking(path, entries)
            if lacking:
                raise WeightsNotFoundError(
                    f"{model}: {path} lacks {_describe(lacking)}. The files ovseg needs: "
                    f"`{download_command(repo_id, hint_files, str(path))}` (docs/weights.md).")
            return str(path)
        if path.exists() or str(weights).startswith((".", "/", "~")) or os.sep + os.sep in str(weights):
            raise WeightsNotFoundError(f"{model}: {weights} is not a directory of model files.")
        repo_id = str(weights)

    from huggingface_hub import snapshot_download

    everything = [g for c in entries for g in c] + optional
    try:  # the cache first: no network needed, and no time lost on one
        cached = snapshot_download(repo_id, allow_patterns=everything or None, local_files_only=True)
        if not _lacking(Path(cached), entries):
            return cached
    except Exception:
        pass
    if not _hub_reachable():
        raise WeightsNotFoundError(weights_help(model, repo_id, download_size, hint, hint_files))
    level = [0] * len(entries)  # which alternative of each entry is asked for
    while True:
        patterns = [g for c, i in zip(entries, level) for g in c[: i + 1]] + optional
        try:
            path = snapshot_download(repo_id, allow_patterns=patterns or None)
        except Exception as err:  # auth, missing repo, broken connection: say which model and why
            raise WeightsNotFoundError(
                f"{model}: downloading {repo_id} (about {download_size}) failed. Download error: {err}\n"
                f"A copy made elsewhere works too: `{download_command(repo_id, hint_files)}`, then "
                f"--{hint.replace('_', '-')} DIR (weights='DIR' in Python)."
            ) from err
        lacking = [k for k, c in enumerate(entries) if not any(_matches(Path(path), g) for g in c[: level[k] + 1])]
        if not lacking:
            return path
        spent = [entries[k] for k in lacking if level[k] + 1 >= len(entries[k])]
        if spent:  # the repository has none of the alternatives: our message, not a loader's
            raise WeightsNotFoundError(
                f"{model}: the repository {repo_id} has no {_describe(spent)}, which ovseg needs "
                f"(downloaded to {path}). Is {repo_id} a copy of {model}? docs/weights.md lists the files.")
        for k in lacking:
            level[k] += 1


def check_weights(model: str, weights, repo_id: str | None, download_size: str, hint: str,
                  required=None, files: list[str] | None = None) -> None:
    """WeightsNotFoundError (with the advice of `ovseg.settings.weights`) unless the weights are a local
    folder, in the Hugging Face cache, or the hub answers (the loader downloads them then).
    Reads no weights and downloads nothing: seconds, where a model load takes a minute.
    required: globs a cached snapshot must hold to count (as `resolve_weights`); files: the globs
    the message's `hf download` command names, one `--include` each (as the loader's message)."""
    if weights is not None:
        path = Path(str(weights)).expanduser()
        if path.is_dir():
            return
        if path.exists():
            raise WeightsNotFoundError(f"{model}: {weights} is not a directory of model files.")
        repo_id = str(weights)
    if not repo_id or "/" not in repo_id:  # a plugin's entry point, not a hub repo: its own loader
        return
    try:
        from huggingface_hub import snapshot_download

        cached = snapshot_download(repo_id, local_files_only=True)  # no network needed
        if _holds(cached, required):
            return
    except Exception:  # noqa: BLE001 - not cached (the error type differs by huggingface_hub version)
        pass
    if not _hub_reachable():
        raise WeightsNotFoundError(weights_help(model, repo_id, download_size, hint, files))
