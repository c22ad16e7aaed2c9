"""The app's infer tasks, one module per model (atlas_registration, segmentation, synthseg, mri_synthseg), and what their results share.
"""
