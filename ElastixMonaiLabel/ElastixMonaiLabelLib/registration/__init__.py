"""Co-registration with elastix: presets as plain parameter files, the two engines (itk-elastix in-process and the elastix executable), elastix's transforms as ITK transforms, resolution matching and pyramid schedules, similarity reports, and the two ways in (ITK images for the command line, server and notebooks; voxel arrays for the Slicer module).
"""
