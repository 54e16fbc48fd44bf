"""The paper's settings, named once (DiffCut, Couairon et al. 2024; METHOD.md sections 2-4).

Every default of alpha, tau and the pipeline's PAMR in ovseg (SegmenterConfig, NCutConfig,
PAMRConfig.open_vocabulary(), the CLI options, the evaluation and the demo) reads these. This
module imports nothing, so `ovseg --help` can show them without loading torch.
"""

ALPHA = 10.0  # affinity exponent W = C**alpha, DiffCut section 3.2 (a soft threshold)
TAU = 0.5  # a split is kept when its NCut < tau, DiffCut section 3.2 (lower: fewer segments)

# PAMR (Araslanov & Roth 2020) as DiffCut's open-vocabulary evaluation runs it at 1024 px
PAMR_ITERATIONS = 15  # its demo notebook: 30
PAMR_DILATIONS = (1, 2, 4, 8, 12, 24, 32, 64)
PAMR_FILTER = "median"  # 3x3 median filter on the labels after PAMR
