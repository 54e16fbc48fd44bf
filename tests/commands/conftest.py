"""Fixtures of the command tests: `invoke` runs a command in-process and times it."""
import time

import pytest
from click.testing import CliRunner

from ovseg.cli import main


@pytest.fixture
def invoke():
    """invoke(args, **kw) -> (click Result, seconds): `ovseg ARGS` in this process (args may hold paths)."""
    def run(args, **kw):
        start = time.perf_counter()
        result = CliRunner().invoke(main, [str(a) for a in args], **kw)
        return result, time.perf_counter() - start

    return run
