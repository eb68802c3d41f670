"""SynthPose (issue #5): synthetic people rendered from CMU motion capture, with exact 2D and 3D labels.

It recreates the paper's setting with a domain gap we control: a `lab` domain with 3D labels and a
`wild` domain with 2D labels for training, from held-out motions (domains.py). Pieces: bvh.py (reader,
forward kinematics), cmu.py (CMU skeletons -> our 16 joints), body.py (bone lengths, shape),
camera.py, raster.py (CPU ray casting), backgrounds.py, render.py; clip.py (the demo video) and
experiment.py (the paper's ablation on SynthPose). The trainer reads it as the `synthpose` dataset
format (training/datasets/synthpose.py).

Motion data: "The data used in this project was obtained from mocap.cs.cmu.edu. The database was
created with funding from NSF EIA-0196217."
"""
