"""cellgan: unsupervised cell-type discovery in H&E histopathology images.

A re-creation and extension of Hu et al., "Unsupervised Learning for Cell-Level
Visual Representation in Histopathology Images With Generative Adversarial
Networks", IEEE JBHI 23(3), 2019 (arXiv 1711.11317).

The names below are the functions the ``cellgan`` commands wrap; each is imported
on first use (PEP 562), so ``import cellgan`` stays light::

    import cellgan
    images = cellgan.find_images(["my_images/"])        # or cellgan.default_images()
    config = cellgan.resolve_config(recipe="default")   # the stage options, by recipe
    cellgan.run_pipeline(images, "runs/mine", config)   # segment ... report
"""

from cellgan.lazy import lazy_attributes

__version__ = "0.1.0"

#: Where each public name lives.
_WHERE = {
    "CellStore": "cellgan.io.cellstore",
    "CellganError": "cellgan.errors",
    "RunFiles": "cellgan.pipeline",
    "SegmentConfig": "cellgan.segment.config",
    "TrainConfig": "cellgan.model.config",
    "default_images": "cellgan.pipeline",
    "find_images": "cellgan.io.images",
    "read_assignments": "cellgan.analysis.composition",
    "resolve_config": "cellgan.config",
    "run_pipeline": "cellgan.pipeline",
    "segment_images": "cellgan.segment.batch",
    "train": "cellgan.model.trainer",
    "write_assignments": "cellgan.analysis.assign",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals())
