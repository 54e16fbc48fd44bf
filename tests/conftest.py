import os

# No test may reach a model hub: a failed lookup would retry for ~45 s before failing.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
