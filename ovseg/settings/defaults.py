"""The paper's settings, and each backbone's cut defaults, named once (DiffCut, Couairon et al.
2024; METHOD.md sections 2-4; docs/benchmarks-real.md).

Every default of alpha, tau and the pipeline's PAMR in ovseg (SegmenterConfig, the backbone
catalog, NCutConfig, KWayConfig, PAMRConfig.open_vocabulary(), the CLI options, the evaluation
and the demo) reads these. This module imports nothing, so `ovseg --help` can show them without
loading torch.
"""

ALPHA = 10.0  # affinity exponent W = C**alpha, DiffCut section 3.2 (a soft threshold)
TAU = 0.5  # a split is kept when its NCut < tau, DiffCut section 3.2 (lower: fewer segments)
AUTO_TAU_MAX = 1.0  # tau="auto" searches up to here: the random-walk NCut of a split of an
# unstructured chain (a random split) is ~ 1 (ovseg/masks/tree.py, docs/random-walk.md)
SLIDER_TAU_MAX = 1.0  # the demo slider's top: each image's tree is built there once

# PAMR (Araslanov & Roth 2020) as DiffCut's open-vocabulary evaluation runs it at 1024 px
PAMR_ITERATIONS = 15  # its demo notebook: 30
PAMR_DILATIONS = (1, 2, 4, 8, 12, 24, 32, 64)
PAMR_FILTER = "median"  # 3x3 median filter on the labels after PAMR

MAX_PIXELS = 2**25  # inputs above this many pixels (about 33.5 MP) are scaled down (ovseg.io)
CACHE_BYTES = 4 * 2**30  # the segment cache's bound ($OVSEG_CACHE_SIZE); maps are ~10-100 KB each

# alpha 10 / tau 0.5 were tuned on SSD-1B; a backbone whose features have other statistics
# carries its own pair (STYLE.md: defaults belong to the model they were tuned on). A backbone not
# listed takes DiffCut's SSD-1B values (`BACKBONE_CUT_FALLBACK`, "not tuned for this backbone").
_LITE = (5.0, TAU)  # on the real-photo composites alpha 10 shatters Lite0's features into hundreds
# of segments and alpha <= 4 leaves one; alpha 5, tau 0.5 scored best (docs/benchmarks-real.md)
BACKBONE_CUT = {  # name: (alpha, tau, where they come from)
    "ssd-1b": (ALPHA, TAU, "DiffCut (Couairon et al. 2024): alpha 10, tau 0.5 on SSD-1B"),
    "sd14": (ALPHA, 0.2, "DiffCut's authors: SD1.4 needs tau 0.2 (DiffCut issue 5)"),
    "sd15": (ALPHA, 0.2, "as SD1.4 (same architecture; DiffCut issue 5); not measured"),
    "efficientnet-lite0": (*_LITE, "the real-photo composite benchmark (docs/benchmarks-real.md)"),
    "efficientnet-lite1": (*_LITE, "efficientnet-lite0's (docs/benchmarks-real.md); not measured for Lite1"),
    "efficientnet-lite2": (*_LITE, "efficientnet-lite0's (docs/benchmarks-real.md); not measured for Lite2"),
}
BACKBONE_CUT_FALLBACK = (ALPHA, TAU, "DiffCut's values for SSD-1B (Couairon et al. 2024), not tuned for this backbone")
