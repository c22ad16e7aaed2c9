"""What only the 3D Slicer module uses, kept here so it is tested without Slicer: the inputs table, segment names and colours, the background work of server requests, upload consent and Python package checks.
"""
