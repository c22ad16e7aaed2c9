"""The app's infer tasks, one module per model (atlas_registration, segmentation, synthseg, mri_synthseg), what their
results share, and the rules every infer request passes (requests).
"""
