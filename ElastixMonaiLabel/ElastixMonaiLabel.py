"""ElastixMonaiLabel: co-register multimodal brain MRI with elastix and segment it through MONAI Label.

This file stays thin: every computation, conversion and protocol lives in
ElastixMonaiLabelLib (pure Python, tested outside Slicer). Here: the module,
its parameter node, the widget, the logic that converts nodes, and the self-test.
"""

import logging
import os

import numpy as np
import vtk

import slicer
from slicer import vtkMRMLLinearTransformNode, vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#
# ElastixMonaiLabel
#


class ElastixMonaiLabel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Elastix MONAI Label")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = ["Elastix"]
        self.parent.contributors = ["ElastixMonaiLabel developers"]
        self.parent.helpText = _(
            "Co-register T1, T2, FLAIR (and more) brain MRI of one subject with elastix, then segment the "
            "brain through a MONAI Label server. See the "
            '<a href="https://github.com/elastix-monailabel/SlicerElastixMonaiLabel">documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "Built on elastix (Klein, Staring et al.) through SlicerElastix and itk-elastix, on MONAI Label, "
            "and on SynthSeg's label maps and idea (Billot et al., Apache-2.0)."
        )


#
# Parameter node
#


@parameterNodeWrapper
class ElastixMonaiLabelParameterNode:
    """Every setting of the module; saved with the scene.

    referenceVolume - fixed volume (e.g. T1).
    movingVolume - volume to align to the reference (e.g. FLAIR).
    preset - registration preset name (ElastixMonaiLabelLib.presets).
    registeredVolume - output: moving volume resampled onto the reference grid.
    outputTransform - output: linear transform (moving volume placed under it aligns with the reference).
    """

    referenceVolume: vtkMRMLScalarVolumeNode
    movingVolume: vtkMRMLScalarVolumeNode
    preset: str = "brain-rigid"
    registeredVolume: vtkMRMLScalarVolumeNode
    outputTransform: vtkMRMLLinearTransformNode


#
# Widget
#


class ElastixMonaiLabelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ElastixMonaiLabel.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ElastixMonaiLabelLogic()

        from ElastixMonaiLabelLib.presets import list_presets

        for preset in list_presets():
            self.ui.presetComboBox.addItem(preset.name)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        node = self._parameterNode
        ready = bool(node and node.referenceVolume and node.movingVolume and node.referenceVolume != node.movingVolume)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Register the moving volume to the reference") if ready else _(
            "Select two different volumes: a reference and a moving volume"
        )

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Registration failed."), waitCursor=True):
            node = self._parameterNode
            if not node.registeredVolume:
                node.registeredVolume = slicer.mrmlScene.AddNewNodeByClass(
                    "vtkMRMLScalarVolumeNode", node.movingVolume.GetName() + "_registered"
                )
            report = self.logic.process(
                node.referenceVolume, node.movingVolume, node.registeredVolume, preset=node.preset,
                outputTransform=node.outputTransform,
            )
            self.ui.statusLabel.text = _("Similarity (NMI) {before:.3f} -> {after:.3f} in {seconds:.1f} s").format(
                before=report["metric_before"], after=report["metric_after"], seconds=report["time_total_s"]
            )
            slicer.util.setSliceViewerLayers(background=node.referenceVolume, foreground=node.registeredVolume, foregroundOpacity=0.5)


#
# Logic
#


class ElastixMonaiLabelLogic(ScriptedLoadableModuleLogic):
    """Converts between nodes and the core's images; the work itself is ElastixMonaiLabelLib's."""

    def getParameterNode(self):
        return ElastixMonaiLabelParameterNode(super().getParameterNode())

    @staticmethod
    def ensureDependencies() -> None:
        """Install itk-elastix and scipy into Slicer's Python on first use, with the user's consent."""
        import slicer.packaging

        requirements = os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(requirements), requester="ElastixMonaiLabel")

    @staticmethod
    def elastixEngineOptions() -> dict:
        """SlicerElastix's elastix/transformix executables and their environment."""
        import Elastix

        elastixLogic = Elastix.ElastixLogic()
        binDir = elastixLogic.getElastixBinDir()
        return {
            "elastix": os.path.join(binDir, elastixLogic.elastixFilename),
            "transformix": os.path.join(binDir, elastixLogic.transformixFilename),
            "env": elastixLogic.getElastixEnv(),
        }

    @staticmethod
    def imageFromVolumeNode(volumeNode):
        from ElastixMonaiLabelLib.geometry import image_from_slicer

        ijkToRAS = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRAS)
        array = slicer.util.arrayFromVolume(volumeNode).astype(np.float32)
        return image_from_slicer(array, slicer.util.arrayFromVTKMatrix(ijkToRAS))

    @staticmethod
    def updateVolumeNodeFromImage(volumeNode, image) -> None:
        from ElastixMonaiLabelLib.geometry import image_to_slicer

        array, ijkToRAS = image_to_slicer(image)
        slicer.util.updateVolumeFromArray(volumeNode, array)
        volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRAS))

    def process(self, referenceVolume, movingVolume, registeredVolume, preset="brain-rigid", outputTransform=None,
                engine="executable", log=None) -> dict:
        """Register ``movingVolume`` to ``referenceVolume``; blocking. Returns the registration report.

        engine: "executable" (SlicerElastix's elastix, the default) or "itk" (itk-elastix).
        """
        if not referenceVolume or not movingVolume or not registeredVolume:
            raise ValueError(_("Reference, moving and output volumes are required"))
        self.ensureDependencies()
        from ElastixMonaiLabelLib.geometry import lps_to_ras_transform
        from ElastixMonaiLabelLib.registration import register_modality

        options = self.elastixEngineOptions() if engine == "executable" else None
        result = register_modality(
            self.imageFromVolumeNode(referenceVolume), self.imageFromVolumeNode(movingVolume),
            name=movingVolume.GetName(), preset=preset, engine=engine, engine_options=options,
            log=log or logging.info,
        )
        self.updateVolumeNodeFromImage(registeredVolume, result.registered)
        if outputTransform is not None and result.matrix is not None:
            # An ITK transform maps reference points to moving points: Slicer's "transform from parent".
            outputTransform.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(lps_to_ras_transform(result.matrix)))
        return result.report

    def generateSampleSubject(self, folder, seed=3, spacing=3.0):
        """Write a small generated subject (see ElastixMonaiLabelLib.sampledata) and load its volumes."""
        from ElastixMonaiLabelLib.sampledata import SubjectSpec, generate_subject

        description = generate_subject(SubjectSpec(seed=seed, spacing_mm=spacing), folder)
        nodes = {name: slicer.util.loadVolume(os.path.join(folder, entry["file"])) for name, entry in description["modalities"].items()}
        return description, nodes


#
# Test
#


class ElastixMonaiLabelTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (and Slicer's CI): real co-registration of generated data, checked against the truth."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_CoRegistrationAccuracy()

    def test_CoRegistrationAccuracy(self):
        self.delayDisplay("Generating a 3 mm sample subject")
        from ElastixMonaiLabelLib.evaluation import registration_error
        from ElastixMonaiLabelLib.geometry import voxel_points

        folder = os.path.join(slicer.app.temporaryPath, "ElastixMonaiLabelTest")
        logic = ElastixMonaiLabelLogic()
        logic.ensureDependencies()
        description, nodes = logic.generateSampleSubject(folder)

        output = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "t2_registered")
        transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "t2_to_t1")
        report = logic.process(nodes["t1"], nodes["t2"], output, outputTransform=transform)
        self.assertGreater(report["metric_after"], report["metric_before"])

        # Error against the known misalignment, over brain voxels (LPS, as the core measures it).
        import itk

        from ElastixMonaiLabelLib.geometry import ras_to_lps_transform

        reference = logic.imageFromVolumeNode(nodes["t1"])
        brain = itk.array_from_image(itk.imread(os.path.join(folder, "brain_mask.nii.gz"))) > 0
        estimated = ras_to_lps_transform(slicer.util.arrayFromTransformMatrix(transform, toWorld=False))
        # arrayFromTransformMatrix gives "to parent"; the core's matrix is "from parent".
        estimated = np.linalg.inv(estimated)
        error = registration_error(estimated, np.array(description["modalities"]["t2"]["matrix_lps"]), voxel_points(reference, brain))
        self.assertLess(error["mean_mm"], 1.0)
        self.assertEqual(output.GetImageData().GetDimensions(), nodes["t1"].GetImageData().GetDimensions())
        self.delayDisplay(f"Test passed: mean error {error['mean_mm']:.2f} mm")
