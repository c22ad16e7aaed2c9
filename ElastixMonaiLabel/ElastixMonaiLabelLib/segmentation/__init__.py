"""Whole-brain segmentation without a network: atlases registered to the subject, label fusion with an intensity model, head and brain foreground, and the user's own SynthSeg run as a tool.
"""
