"""What the slice views show: the reference compared with another volume."""

from __future__ import annotations

from .volumes import MARK


class Comparison:
    """The reference under another volume in every slice view: ``fade`` (the other volume on top at ``opacity``) or
    ``checkerboard`` (one volume made of both, same grid). The checkerboard is computed again only when the volumes,
    their voxels or the mode change, never for an opacity change (which it does not show)."""

    def __init__(self) -> None:
        self._shown: tuple | None = None

    @staticmethod
    def _what(reference_node, other_node, mode: str) -> tuple:
        return (reference_node.GetID(), other_node.GetID(), mode,
                reference_node.GetImageData().GetMTime(), other_node.GetImageData().GetMTime())

    def show(self, reference_node, other_node, mode: str, opacity: float) -> None:
        import slicer

        what = self._what(reference_node, other_node, mode)
        if mode != "checkerboard":
            slicer.util.setSliceViewerLayers(background=reference_node, foreground=other_node, foregroundOpacity=opacity,
                                             fit=False)
        elif what != self._shown:
            board_node = self._checkerboard(reference_node, other_node)
            slicer.util.setSliceViewerLayers(background=board_node, foreground=None, fit=False)
        self._shown = what

    @staticmethod
    def _checkerboard(reference_node, other_node):
        import slicer

        from ElastixMonaiLabelLib.workflows.figures import checkerboard

        board = checkerboard(slicer.util.arrayFromVolume(reference_node), slicer.util.arrayFromVolume(other_node))
        name = other_node.GetName() + "_checkerboard"
        board_node = slicer.mrmlScene.GetFirstNodeByName(name)
        if board_node is None or board_node.GetAttribute(MARK) != "checkerboard":
            board_node = slicer.vtkSlicerVolumesLogic.CloneVolume(slicer.mrmlScene, reference_node, name)
            board_node.SetAttribute(MARK, "checkerboard")
        board_node.CopyOrientation(reference_node)  # a board kept from an earlier reference takes this one's grid
        slicer.util.updateVolumeFromArray(board_node, board)
        return board_node
