"""The `ovseg` command: a thin shell over the Python API.

Each stage keeps its command next to its code; this module only gathers them, and imports
nothing heavy, so `ovseg --help` answers at once.
"""
from __future__ import annotations

import click

from ovseg import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ovseg")
def main() -> None:
    """Training-free, open-vocabulary image segmentation (DiffCut + CLIP).

    \b
    ovseg label photo.jpg --classes "cat,sofa,wall" --out out/
    ovseg segment photos/ --out masks/
    ovseg backbones
    """
