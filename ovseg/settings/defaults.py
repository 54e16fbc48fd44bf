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

TAU_SD1 = 0.2  # DiffCut's authors for SD1.4 (DiffCut issue 5): its NCut costs sit lower

# The calibrated rule (METHOD.md section 10; chosen on half of the real-photo composites,
# docs/benchmarks-real.md "Calibrated affinity"): the default of every backbone without a
# published recipe (efficientnet-lite*, dinov2-*, clip-b16, siglip-b16, plug-ins)
AUTO = "auto"  # alpha="auto": chosen per image by the degree target, no self-loops (ovseg.masks.calibrate)
DEGREE_TARGET = 0.005  # d*: alpha per image so that the mean off-diagonal entry of W = C**alpha is d*
AUTO_ALPHA_RANGE = (0.125, 1000.0)  # the alpha the degree target searches (auto rounds it to eighths)
TAU_CALIBRATED = 0.4  # the NCut threshold on the calibrated graph (diffcut; kway: its merge threshold)
MIN_AREA = 0.03  # segments under this fraction of the image merge into their most similar neighbour
CALIBRATED = dict(alpha=AUTO, tau=TAU_CALIBRATED, min_area=MIN_AREA)
PUBLISHED = dict(alpha=ALPHA, tau=TAU, min_area=0.0)  # DiffCut's, for the models it was tuned on

# alpha 10 / tau 0.5 were tuned on SSD-1B and stay the default of DiffCut's own models
# (STYLE.md: defaults belong to the model they were tuned on); every other backbone, plug-ins
# included, takes the calibrated rule (`BACKBONE_CUT_FALLBACK`), with no number chosen for it.
_PUBLISHED = "DiffCut (Couairon et al. 2024): alpha 10, tau 0.5 on SSD-1B"
BACKBONE_CUT = {  # name: (alpha, tau, min_area, where they come from)
    "ssd-1b": (ALPHA, TAU, 0.0, _PUBLISHED),
    "sdxl": (ALPHA, TAU, 0.0, _PUBLISHED + "; the SDXL family's, not measured on SDXL"),
    "vega": (ALPHA, TAU, 0.0, _PUBLISHED + "; the SDXL family's, not measured on Vega"),
    "sd14": (ALPHA, TAU_SD1, 0.0, "DiffCut's authors: SD1.4 needs tau 0.2 (DiffCut issue 5)"),
    "sd15": (ALPHA, TAU_SD1, 0.0, "as SD1.4 (same architecture; DiffCut issue 5); not measured"),
}
BACKBONE_CUT_FALLBACK = (AUTO, TAU_CALIBRATED, MIN_AREA,
                         "the calibrated rule (METHOD.md 10, docs/benchmarks-real.md): no published recipe")
