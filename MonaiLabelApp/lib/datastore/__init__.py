"""The app's datastore: MONAI Label's local datastore with the checks it lacks, and what an image or label must be before it is kept.
"""
