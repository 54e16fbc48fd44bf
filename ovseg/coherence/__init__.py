"""Comparing backbones on semantic coherence (DiffCut project page, "Semantic Coherence in
Vision Encoders"): patch-similarity heatmaps, and a number for them on images with ground truth.

    from ovseg.coherence import similarity_maps, plot_similarity, coherence_scores, read_pairs
    maps = similarity_maps("dog.jpg", "dogs.jpg", "ssd-1b,dinov2-b", point="0.5,0.4")
    plot_similarity(maps, "dog.jpg", "dogs.jpg", out="coherence.png")
    scores = coherence_scores(read_pairs("pairs/"), "ssd-1b,dinov2-b")  # AUC and mIoU per backbone
"""
from ovseg.coherence._heatmap import SimilarityMaps, cosine_map, plot_similarity, similarity_maps
from ovseg.coherence._inputs import Point, load_image, load_mask, parse_point, read_pairs
from ovseg.coherence._metrics import (
    CoherenceScore,
    coherence_scores,
    dataset_pairs,
    patch_labels,
    roc_auc,
    sample_pairs,
)
from ovseg.coherence._report import format_table, plot_scores, save_scores

__all__ = [
    "CoherenceScore",
    "Point",
    "SimilarityMaps",
    "coherence_scores",
    "cosine_map",
    "dataset_pairs",
    "format_table",
    "load_image",
    "load_mask",
    "parse_point",
    "patch_labels",
    "plot_scores",
    "plot_similarity",
    "read_pairs",
    "roc_auc",
    "sample_pairs",
    "save_scores",
    "similarity_maps",
]
