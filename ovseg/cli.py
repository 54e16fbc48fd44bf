"""The `ovseg` command: a thin shell over the Python API.

The commands live in ovseg/commands/ (one module per command group); this module only gathers
them, and imports nothing heavy, so `ovseg --help` answers at once.

Exit codes of every command (`ovseg.commands.edge`, the checks all of them share): 0 every image done (or
skipped as already done), 1 some images failed (each named in the summary) or a model could not be
found or loaded, 2 usage error (settings are checked before any model loads), 130 interrupted
(Ctrl-C).
"""
from __future__ import annotations

import click

from ovseg import __version__
from ovseg.commands import edge as _edge


@click.group(cls=_edge.Group,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ovseg")
def main() -> None:
    """Training-free, open-vocabulary image segmentation (DiffCut + CLIP).

    \b
    ovseg label photo.jpg --classes "cat,sofa,wall" --out out/
    ovseg segment photos/ --out masks/
    ovseg export out/ --format coco
    ovseg backbones
    ovseg eval --dataset voc --root data --out eval/voc
    ovseg coherence ref.jpg target.jpg --backbones ssd-1b,dinov2-b --point 0.5,0.4 --out fig.png
    """


# Each command lives in ovseg/commands/; importing them loads only click and small files.
from ovseg.commands.cache import backbones, cache  # noqa: E402
from ovseg.commands.coherence import coherence_command  # noqa: E402
from ovseg.commands.demo import demo_command  # noqa: E402
from ovseg.commands.eval import eval_command  # noqa: E402
from ovseg.commands.export import export_command  # noqa: E402
from ovseg.commands.pipeline import label, segment  # noqa: E402

for _command in (label, segment, export_command, cache, backbones, eval_command, coherence_command, demo_command):
    main.add_command(_command)

if __name__ == "__main__":
    main()
