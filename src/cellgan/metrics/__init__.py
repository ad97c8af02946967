"""Scores against ground truth: nucleus detection and segmentation (and clustering)."""

from cellgan.metrics.detection import detection_scores, match_points, scores_from_counts
from cellgan.metrics.segmentation import aggregated_jaccard_index, dice

__all__ = [
    "aggregated_jaccard_index",
    "detection_scores",
    "dice",
    "match_points",
    "scores_from_counts",
]
