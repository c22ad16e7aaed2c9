"""Images and what they carry: the ITK image type (physical LPS space) and its checks, Slicer's voxel arrays, NIfTI with numpy alone, geometry (the one place LPS and RAS meet), SynthSeg's labels, the multimodal case contract and the datastore's naming rule.
"""
