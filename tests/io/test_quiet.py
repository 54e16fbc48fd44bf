"""Third-party noise (ovseg/io/quiet.py): loading models through the Python API prints no
accelerate advice and no loading bars, and leaves the libraries' log levels as they were."""
import subprocess
import sys


def test_python_api_model_loading_is_quiet(tiny_weights):
    """create_backbone / create_labeler in a fresh process: no accelerate advice, no loading bars."""
    code = ("import ovseg, sys\n"
            f"ovseg.create_backbone('ssd-1b', weights={tiny_weights['weights']!r}, device='cpu')\n"
            f"ovseg.create_labeler(weights={tiny_weights['clip_weights']!r})\n"
            "import logging; assert logging.getLogger('transformers').level != logging.ERROR  # restored\n")
    import os

    env = {k: v for k, v in os.environ.items() if not k.endswith("_VERBOSITY")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    noise = run.stdout + run.stderr
    assert "accelerate" not in noise and "Loading weights" not in noise, noise
