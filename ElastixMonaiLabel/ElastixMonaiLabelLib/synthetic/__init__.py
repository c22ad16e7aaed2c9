"""Subjects generated from SynthSeg's label maps with known ground truth (misalignments, labels), and the measures that score results against it.
"""
