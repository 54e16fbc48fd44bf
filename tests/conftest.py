import os

# No test may reach a model hub: a failed lookup would retry for ~45 s before failing.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pytest


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
