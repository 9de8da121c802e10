"""Studies -> jobs: the papers' ablation studies as plain-data files (configs/studies/) and the commands that run them.

    python -m mm1_jax.sweep list
    python -m mm1_jax.sweep plan configs/studies/mm1_connector.py [--rows=a,b] [--root=gs://BUCKET/studies]

MM1 (arXiv 2403.09611), MM1.5 (arXiv 2409.20566) and mPLUG-Owl3 (arXiv 2408.04840); the file format is described in
`mm1_jax.sweep.studies`.
"""
