"""The paper's settings, named once (DiffCut, Couairon et al. 2024; METHOD.md sections 2-4).

Every default of alpha, tau and the pipeline's PAMR in ovseg (SegmenterConfig, NCutConfig,
PAMRConfig.open_vocabulary(), the CLI options, the evaluation and the demo) reads these. This
module imports nothing, so `ovseg --help` can show them without loading torch.
"""

ALPHA = 10.0  # affinity exponent W = C**alpha, DiffCut section 3.2 (a soft threshold)
TAU = 0.5  # a split is kept when its NCut < tau, DiffCut section 3.2 (lower: fewer segments)
TAU_SD1 = 0.2  # DiffCut's authors for SD1.4 (DiffCut issue 5): its NCut costs sit lower

# PAMR (Araslanov & Roth 2020) as DiffCut's open-vocabulary evaluation runs it at 1024 px
PAMR_ITERATIONS = 15  # its demo notebook: 30
PAMR_DILATIONS = (1, 2, 4, 8, 12, 24, 32, 64)
PAMR_FILTER = "median"  # 3x3 median filter on the labels after PAMR

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
