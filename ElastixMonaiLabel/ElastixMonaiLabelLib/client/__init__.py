"""Talking to a MONAI Label server running this project's app: the small REST client (no monailabel needed, so it runs inside Slicer) and a local server started and stopped for the caller.
"""
