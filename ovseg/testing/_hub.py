"""A stand-in for the Hugging Face Hub, to test the first-run download path offline.

`FakeHub({"segmind/SSD-1B": folder}, cache_dir).install(monkeypatch)` makes
`huggingface_hub.snapshot_download` serve those folders as repositories, with the hub's own
`allow_patterns` filtering (`huggingface_hub.utils.filter_repo_objects`), into an empty cache, and
makes the hub look reachable. `downloads` records every file fetched, so a test can check that a
run asks for exactly the files docs/weights.md lists (the fp16 variant and not the fp32 file, the
safetensors and not the pickle...).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


class FakeHub:
    def __init__(self, repos: dict[str, str | os.PathLike], cache_dir: str | os.PathLike):
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.cache = Path(cache_dir)
        self.downloads: list[tuple[str, str]] = []  # (repo_id, file), in download order

    def files(self, repo_id: str) -> list[str]:
        root = self.repos[repo_id]
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def snapshot_download(self, repo_id: str, *, allow_patterns=None, local_files_only: bool = False, **_):
        from huggingface_hub.utils import filter_repo_objects

        snapshot = self.cache / repo_id.replace("/", "--")
        if local_files_only:
            if not snapshot.is_dir():
                raise FileNotFoundError(f"{repo_id} is not in the cache")
            return str(snapshot)
        if repo_id not in self.repos:
            raise FileNotFoundError(f"404 Repository Not Found for url: https://huggingface.co/{repo_id}")
        for rel in filter_repo_objects(self.files(repo_id), allow_patterns=allow_patterns):
            target = snapshot / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.repos[repo_id] / rel, target)
                self.downloads.append((repo_id, rel))
        snapshot.mkdir(parents=True, exist_ok=True)
        return str(snapshot)

    def downloaded(self, repo_id: str) -> list[str]:
        return [f for r, f in self.downloads if r == repo_id]

    def install(self, monkeypatch) -> "FakeHub":
        """Route ovseg's downloads here for the test (pytest's `monkeypatch` undoes it)."""
        import huggingface_hub

        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr("ovseg.settings.weights._hub_reachable", lambda timeout=3.0: True)
        return self
