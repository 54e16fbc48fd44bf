import os

# No test may reach a model hub: a failed lookup would retry for ~45 s before failing.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest


@pytest.fixture
def no_models(monkeypatch):
    """Any model build fails the test: what is checked must be checked before a model loads."""
    import torch  # noqa: F401  (imported before timing: the checks, not Python's import, are timed)
    import ovseg
    import ovseg.features
    import ovseg.labels
    import ovseg.labels.labeler

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(ovseg.features, "create_backbone", refuse)
    monkeypatch.setattr(ovseg.labels.labeler, "create_labeler", refuse)
    monkeypatch.setattr(ovseg.labels, "create_labeler", refuse)  # what ovseg.pipeline._models calls
    monkeypatch.setitem(vars(ovseg), "create_backbone", refuse)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """$OVSEG_CACHE in this test's temporary folder: no test reads or fills the user's caches
    (a module takes it for every test with `pytestmark = pytest.mark.usefixtures("cache_home")`)."""
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def planted():
    """The "planted-walk" and "no-attention" backbones registered for the test
    (`ovseg.testing.register_planted_walk`): yields (build calls, extract calls)."""
    from ovseg.testing import register_planted_walk

    with register_planted_walk() as calls:
        yield calls


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Tiny random-weight SSD-1B and CLIP checkpoints, built once per test session.

    Returns {"weights": dir, "clip_weights": dir}, the keyword arguments of ovseg.Segmenter.
    """
    from ovseg.testing import make_tiny_backbone_weights, make_tiny_clip_weights

    root = tmp_path_factory.mktemp("tiny-weights")
    return {"weights": make_tiny_backbone_weights("ssd-1b", root / "ssd-1b"),
            "clip_weights": make_tiny_clip_weights(root / "clip")}


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (minutes on the 2-core CPU) run only with OVSEG_RUN_SLOW=1 (.ci/run sets it)."""
    if os.environ.get("OVSEG_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set OVSEG_RUN_SLOW=1 to run it (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
