"""Stage 3: using the trained model (Hu et al., JBHI 2019, Sec. III-C/D).

- :mod:`~cellgan.analysis.assign`: a category (argmax Q) and features for every cell,
  the ASSIGNMENTS directory, and its scores against reference labels;
- :mod:`~cellgan.analysis.diagnostics`: label-free checks (how much nucleus shape explains
  the categories, category sizes, agreement between seeds);
- :mod:`~cellgan.analysis.probe`: a linear probe of the features, split by image;
- :mod:`~cellgan.analysis.baselines`: k-means baselines on pixels and on the cell table;
- :mod:`~cellgan.analysis.composition`: per-image cell-type proportions;
- :mod:`~cellgan.analysis.image_classification`: images clustered or classified on them.

The submodules are imported on use, so that importing the package stays light.
"""
