"""The Slicer side of the module: MRML nodes <-> the core's arrays. Imported by ElastixMonaiLabel.py only.

Kept apart from ElastixMonaiLabelLib, which never imports Slicer and is tested outside it.
"""
