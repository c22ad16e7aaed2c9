"""The Slicer side of the module: MRML nodes <-> the core's arrays, and the decisions the widget only displays.
Imported by ElastixMonaiLabel.py only; every module here imports slicer, vtk and qt inside its functions, so the
package imports without Slicer. Kept apart from ElastixMonaiLabelLib, which never imports Slicer.

- volumes: volume nodes <-> VoxelVolume (voxels and world geometry)
- registration_nodes: registration results -> registered volumes and transforms (placement, parents, storage)
- segmentations: label maps <-> segments; whether a segmentation holds edits not yet on the server
- views: what the slice views show (the reference compared with another volume)
- application: Slicer's application around the module (SlicerElastix, waiting, installing, asking)
- widgets: filling the panel's tables and combo boxes

Testing/slicer/on_slicer_core runs all of it on Slicer's libraries (slicer-core).
"""
