"""SynthSeg's idea on torch: images synthesised from label maps, the contrast-agnostic training and its unattended timed run.
"""
