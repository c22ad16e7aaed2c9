"""Images and what they carry: the ITK image type (physical LPS space), its checks and its resampler; Slicer's voxel arrays (numpy, no itk) and theirs; the core's one NIfTI codec (numpy); geometry (the one place LPS and RAS meet); modality names; SynthSeg's label table and label maps from other tools; the multimodal case contract; the datastore's naming rule.
"""
