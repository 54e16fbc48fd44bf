"""Name the regions of the example photographs from Python: what `ovseg label` does.

    python examples/label_api.py                      # downloads the weights on first use
    HF_HUB_OFFLINE=1 python examples/label_api.py --weights ./ssd-1b --clip-weights ./clip-convnext

The core is three lines:

    segmenter = ovseg.Segmenter()
    result = segmenter.label("examples/chelsea.png", "cat,blanket,wall")
    result.save_overlay("chelsea.overlay.png")
"""
from __future__ import annotations

import argparse
from pathlib import Path

import ovseg

HERE = Path(__file__).parent
PHOTOS = {  # photograph -> what to look for ("a;b" makes b a synonym of a)
    "chelsea.png": "cat,blanket,wall,floor",
    "coffee.jpg": "coffee cup;mug,saucer,spoon,table,coffee",
    "astronaut.jpg": "person;astronaut,flag,rocket,space suit,sky",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", help="local folder of the SSD-1B weights (default: download)")
    parser.add_argument("--clip-weights", help="local folder of the CLIP labeler (default: download)")
    parser.add_argument("--out", default="out", help="output folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    args = parser.parse_args()

    # Models load once, on first use; every call after that reuses them.
    segmenter = ovseg.Segmenter(weights=args.weights, clip_weights=args.clip_weights, device=args.device)
    out = Path(args.out)
    for name, classes in PHOTOS.items():
        result = segmenter.label(HERE / name, classes)
        stem = Path(name).stem
        result.save_png(out / f"{stem}.labels.png")  # palette PNG: value = class index
        result.save_overlay(out / f"{stem}.labels.overlay.png")  # the photo, coloured, with a legend
        result.save_json(out / f"{stem}.labels.json", label_png=f"{stem}.labels.png")  # COCO RLE masks
        found = sorted({s.class_name for s in result.segments})
        print(f"{name}: {len(result.segments)} segments; classes found: {', '.join(found)}")
    # Segments are cached on disk: labelling the same photos with other classes skips the
    # diffusion pass, e.g. segmenter.label(HERE / "chelsea.png", "cat,dog,sofa").


if __name__ == "__main__":
    main()
