"""`ovseg cache` (where the caches are, how large, emptying them) and `ovseg backbones` (the registry)."""
from __future__ import annotations

import click

from ovseg.commands import edge as _edge


@click.group()
def cache() -> None:
    """Show or empty ovseg's caches (segments, text embeddings, empty-prompt embeddings).

    They live under $OVSEG_CACHE (default ~/.cache/ovseg); the segment cache keeps at most
    $OVSEG_CACHE_SIZE (default 4G), evicting the least recently used entries.

    \b
    ovseg cache info
    ovseg cache clear
    ovseg cache clear --kind segments
    """


@cache.command("info")
def cache_info() -> None:
    """Where the caches are and how large they are."""
    from ovseg.io.cache import CACHE_KINDS, cache_info as info

    _edge.start()
    with _edge.settings_checked():  # OVSEG_CACHE_SIZE
        data = info()
    click.echo(f"root: {data['root']}")
    for kind in CACHE_KINDS:
        click.echo(f"  {kind:14s} {data[kind]['files']:7d} file(s)  {_size(data[kind]['bytes'])}")
    click.echo(f"segment cache bound: {_size(data['max_bytes'])} (OVSEG_CACHE_SIZE)")


@cache.command("clear")
@click.option("--kind", type=click.Choice(["segments", "text-embeds", "prompt-embeds"]), multiple=True,
              help="Only this cache (repeatable) [default: all].")
def cache_clear(kind) -> None:
    """Delete the caches (they are rebuilt when needed)."""
    from ovseg.io.cache import CACHE_KINDS, clear_cache

    _edge.start()
    with _edge.settings_checked():
        freed = clear_cache(kind or CACHE_KINDS)
    click.echo(f"freed {_size(sum(freed.values()))} ({', '.join(freed)})")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@click.command()
def backbones() -> None:
    """List the registered backbones: name, input resolution, download size, weights repo.

    \b
    ovseg backbones
    """
    from ovseg.features import backbone_info, list_backbones

    rows = [("name", "resolution", "stride", "alpha", "tau", "download", "weights")]
    for name in list_backbones():
        info = backbone_info(name)
        rows.append((name, str(info.resolution or "?"), str(info.stride or "?"), f"{info.alpha:g}",
                     f"{info.tau:g}", str(info.download_size), str(info.repo_id)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
