"""Issue 11, step 7: how much of its teacher a classifier of one cell's own patch can learn.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/issue11_ceiling.py
On the cached store (.cache/issue11, see issue11_windows.py): the default recipe's teacher
(pixels + moments + crowding over 8 neighbours, seed 0), then a logistic regression (5-fold
cross-validated predictions) from the cell's own description (PCA-50 of its patch + moments;
then + its crowding) to the teacher's label, scored against the teacher and against the labels.
"""
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from cellgan.metrics.clustering import clustering_scores
from cellgan.model.self_labels import neighbourhood_clusters
from cellgan.neighbourhood import _joined, crowding, nucleus_moments, pixel_pca

C='.cache/issue11/'
p=np.load(C+'patches_faded.npy'); t=pd.read_parquet(C+'table.parquet'); lab=t.label.astype(str).to_numpy()
teacher=neighbourhood_clusters(p,t.drop(columns=['label']),clusters=4,neighbours=8,seed=0,moments_weight=0.5,crowding_weight=0.2)
pca=pixel_pca(p,seed=0)
own=_joined(pca,[(nucleus_moments(p),0.5)])
withc=_joined(pca,[(nucleus_moments(p),0.5),(crowding(t),0.2)])
for name,X in [('patch',own),('patch+crowding',withc)]:
    pred=cross_val_predict(LogisticRegression(max_iter=300),X,teacher,cv=5)
    print(name,'fit teacher acc',(pred==teacher).mean().round(3),'ARI vs teacher',round(clustering_scores(pred,teacher.astype(str))['ari'],3),'vs labels',{k:round(v,3) for k,v in clustering_scores(pred,lab).items() if k in('acc','ari','nmi')})
