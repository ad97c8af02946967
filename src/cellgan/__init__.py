"""cellgan: unsupervised cell-type discovery in H&E histopathology images.

A re-creation and extension of Hu et al., "Unsupervised Learning for Cell-Level
Visual Representation in Histopathology Images With Generative Adversarial
Networks", IEEE JBHI 23(3), 2019 (arXiv 1711.11317).
"""

__version__ = "0.1.0"
