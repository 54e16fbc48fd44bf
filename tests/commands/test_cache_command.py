"""`ovseg cache` (ovseg/commands/cache.py): a bad $OVSEG_CACHE_SIZE is a usage error naming it;
emptying the caches needs no bound."""
import pytest
from click.testing import CliRunner

from ovseg.cli import main


@pytest.mark.parametrize("size", ["banana", "-5", "inf"])
def test_bad_cache_size_is_a_usage_error(invoke, monkeypatch, size):
    monkeypatch.setenv("OVSEG_CACHE_SIZE", size)
    result, _ = invoke(["cache", "info"])
    assert result.exit_code == 2, result.output
    assert "OVSEG_CACHE_SIZE" in result.output and isinstance(result.exception, SystemExit)
    assert invoke(["cache", "clear"])[0].exit_code == 0  # emptying needs no bound
