"""The app's trainers, one module per trainable model (segmentation, synthseg).
"""
