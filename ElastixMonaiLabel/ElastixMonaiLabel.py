"""ElastixMonaiLabel: co-register multimodal brain MRI with elastix and segment it through MONAI Label.

This file stays thin: every computation, conversion and protocol lives in
ElastixMonaiLabelLib (pure Python, tested outside Slicer). Here: the module, its
parameter node, the widget (which only polls background jobs from a QTimer), the
logic that converts between nodes and files, and the self-test.
"""

import logging
import os
import shutil
import tempfile
import time

import numpy as np
import qt
import vtk

import slicer
from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)
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
            "Co-register T1, T2, FLAIR (and more) brain MRI of one subject with elastix, send the aligned stack to a "
            "MONAI Label server, receive SynthSeg's 32 brain structures, correct them in Segment Editor, submit the "
            "correction and train the model with it. Nothing is sent to a server before you agree. See the "
            '<a href="https://github.com/elastix-monailabel/SlicerElastixMonaiLabel">documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "Built on elastix (S. Klein, M. Staring et al.) through SlicerElastix and itk-elastix, on MONAI Label "
            "(Project MONAI), and on SynthSeg's label maps and idea (B. Billot et al., Apache-2.0)."
        )


#
# Parameter node
#


@parameterNodeWrapper
class ElastixMonaiLabelParameterNode:
    """Every setting of the module; saved with the scene.

    Bound to widgets through SlicerParameterName in the .ui, except the lists and the server-side image id,
    which the widget keeps in step with its table and its jobs.
    """

    referenceVolume: vtkMRMLScalarVolumeNode
    referenceModality: str = "t1"
    movingVolumes: list[vtkMRMLScalarVolumeNode]
    movingModalities: list[str]
    preset: str = "brain-rigid"
    brainMask: vtkMRMLLabelMapVolumeNode
    engine: str = "auto"
    placeUnderTransforms: bool = True
    registeredVolumes: list[vtkMRMLScalarVolumeNode]
    compareVolume: vtkMRMLScalarVolumeNode
    compareMode: str = "fade"
    compareOpacity: float = 0.5
    serverUrl: str = "http://127.0.0.1:8000"
    model: str = "atlas_registration"
    segmentation: vtkMRMLSegmentationNode
    strategy: str = "random"
    trainingEpochs: int = 10
    imageId: str = ""


#
# Widget
#


class ElastixMonaiLabelWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_MS = 100

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._jobs = {}  # role -> (job, on_done); polled by one timer
        self._serverInfo = {}
        self._training = False
        self._updatingTable = False

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
            self.ui.presetComboBox.setItemData(self.ui.presetComboBox.count - 1, preset.description, qt.Qt.ToolTipRole)
        self.ui.movingTable.setHorizontalHeaderLabels([_("Volume"), _("Modality")])
        self.ui.movingTable.horizontalHeader().setStretchLastSection(True)
        self.ui.registrationResultsTable.setHorizontalHeaderLabels([_("Modality"), _("NMI before"), _("NMI after"), _("Time (s)")])

        self._timer = qt.QTimer()
        self._timer.setInterval(self.POLL_MS)
        self._timer.connect("timeout()", self._pollJobs)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.addMovingButton.connect("clicked(bool)", self.onAddMoving)
        self.ui.removeMovingButton.connect("clicked(bool)", self.onRemoveMoving)
        self.ui.sampleDataButton.connect("clicked(bool)", self.onGenerateSample)
        self.ui.movingTable.connect("cellChanged(int,int)", self.onModalityEdited)
        self.ui.referenceSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onReferenceChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.compareSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateCompareView)
        self.ui.compareModeComboBox.connect("currentIndexChanged(int)", self.updateCompareView)
        self.ui.compareOpacitySlider.connect("valueChanged(double)", self.updateCompareView)
        self.ui.connectButton.connect("clicked(bool)", self.onConnect)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self._showModelInfo)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.editButton.connect("clicked(bool)", self.onEditSegmentation)
        self.ui.submitButton.connect("clicked(bool)", self.onSubmit)
        self.ui.nextSampleButton.connect("clicked(bool)", self.onNextSample)
        self.ui.trainButton.connect("clicked(bool)", self.onTrain)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        for job, _onDone in self._jobs.values():
            job.cancel()
        self._jobs.clear()
        self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
            self._refreshMovingTable()
            self._updateButtons()

    # -- inputs ------------------------------------------------------------------------------

    def _refreshMovingTable(self) -> None:
        node = self._parameterNode
        self._updatingTable = True
        try:
            rows = [(v, m) for v, m in zip(node.movingVolumes, node.movingModalities) if v is not None]
            self.ui.movingTable.setRowCount(len(rows))
            for row, (volume, modality) in enumerate(rows):
                nameItem = qt.QTableWidgetItem(volume.GetName())
                nameItem.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)
                self.ui.movingTable.setItem(row, 0, nameItem)
                self.ui.movingTable.setItem(row, 1, qt.QTableWidgetItem(modality))
        finally:
            self._updatingTable = False

    def onReferenceChanged(self, volume) -> None:
        from ElastixMonaiLabelLib.multimodal import guess_modality

        if volume is not None and self._parameterNode:
            self._parameterNode.referenceModality = guess_modality(volume.GetName()) or self._parameterNode.referenceModality

    def onAddMoving(self) -> None:
        from ElastixMonaiLabelLib.multimodal import guess_modality

        node = self._parameterNode
        volume = self.ui.movingSelector.currentNode()
        if volume is None or volume in node.movingVolumes or volume == node.referenceVolume:
            return
        taken = {node.referenceModality, *node.movingModalities}
        modality = guess_modality(volume.GetName()) or f"channel{len(node.movingVolumes) + 1}"
        if modality in taken:
            modality = f"{modality}_{len(node.movingVolumes) + 1}"
        node.movingVolumes = [*node.movingVolumes, volume]
        node.movingModalities = [*node.movingModalities, modality]
        self._refreshMovingTable()

    def onRemoveMoving(self) -> None:
        node = self._parameterNode
        rows = sorted({index.row() for index in self.ui.movingTable.selectedIndexes()}, reverse=True)
        volumes, modalities = list(node.movingVolumes), list(node.movingModalities)
        for row in rows:
            del volumes[row], modalities[row]
        node.movingVolumes, node.movingModalities = volumes, modalities
        self._refreshMovingTable()

    def onModalityEdited(self, row, column) -> None:
        if self._updatingTable or column != 1:
            return
        modalities = list(self._parameterNode.movingModalities)
        modalities[row] = self.ui.movingTable.item(row, 1).text().strip()
        self._parameterNode.movingModalities = modalities

    def onGenerateSample(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not generate the sample subject."), waitCursor=True):
            self.logic.ensureDependencies()
            folder = tempfile.mkdtemp(prefix="ElastixMonaiLabelSample-", dir=slicer.app.temporaryPath)
            _description, nodes = self.logic.generateSampleSubject(folder)
            node = self._parameterNode
            node.referenceVolume, node.referenceModality = nodes["t1"], "t1"
            node.movingVolumes = [nodes["t2"], nodes["flair"]]
            node.movingModalities = ["t2", "flair"]
            self._refreshMovingTable()

    # -- background jobs -------------------------------------------------------------------------

    def _startJob(self, role, job, onDone) -> None:
        self._jobs[role] = (job, onDone)
        self._timer.start()
        self._updateButtons()

    def _pollJobs(self) -> None:
        for role, (job, onDone) in list(self._jobs.items()):
            for event in job.poll():
                self._showEvent(role, event)
            if job.finished:
                del self._jobs[role]
                self._progressBar(role).visible = False
                with slicer.util.tryWithErrorDisplay(_("{role} failed.").format(role=role.capitalize())):
                    onDone(job)
        if not self._jobs:
            self._timer.stop()
        self._updateButtons()

    def _progressBar(self, role):
        return self.ui.trainingProgressBar if role in ("training", "stop training") else self.ui.registrationProgressBar

    def _showEvent(self, role, event) -> None:
        bar = self._progressBar(role)
        if event.kind == "log":
            self.ui.logTextEdit.appendPlainText(event.message)
        elif event.kind == "progress":
            bar.visible = True
            if event.fraction is None:
                bar.setRange(0, 0)  # busy indicator
            else:
                bar.setRange(0, 100)
                bar.value = int(round(100 * event.fraction))
            self.ui.statusLabel.text = event.message

    def _updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        if node is None:
            return
        registering = "registration" in self._jobs
        self.ui.applyButton.text = _("Cancel") if registering else _("Co-register")
        canRegister = bool(node.referenceVolume and [v for v in node.movingVolumes if v is not None])
        self.ui.applyButton.enabled = registering or canRegister
        self.ui.applyButton.toolTip = _("Stop the registration (the elastix processes are killed)") if registering else (
            _("Register every moving volume to the reference in a background process") if canRegister
            else _("Select a reference volume and add at least one moving volume"))
        segmenting = "segmentation" in self._jobs
        self.ui.segmentButton.text = _("Cancel") if segmenting else _("Segment")
        self.ui.segmentButton.enabled = segmenting or bool(node.referenceVolume and node.model and self._serverInfo)
        self.ui.submitButton.enabled = bool(node.segmentation and node.imageId and self._serverInfo) and not self._jobs.get("submit")
        self.ui.editButton.enabled = bool(node.segmentation)
        self.ui.nextSampleButton.enabled = bool(self._serverInfo) and "next sample" not in self._jobs
        self.ui.trainButton.enabled = bool(self._serverInfo and node.model)
        self.ui.trainButton.text = _("Stop training") if self._training else _("Start training")

    # -- registration ----------------------------------------------------------------------------

    def onApplyButton(self) -> None:
        if "registration" in self._jobs:
            self._jobs["registration"][0].cancel()
            self.ui.statusLabel.text = _("Registration cancelled.")
            return
        with slicer.util.tryWithErrorDisplay(_("Registration could not start."), waitCursor=True):
            node = self._parameterNode
            self.ui.logTextEdit.clear()
            self.ui.registrationResultsTable.setRowCount(0)
            job, onFinished = self.logic.startRegistration(
                node.referenceVolume, list(node.movingVolumes), node.referenceModality, list(node.movingModalities),
                preset=node.preset, brainMask=node.brainMask, engine=node.engine,
                placeUnderTransforms=node.placeUnderTransforms,
            )
            self._startJob("registration", job, lambda finishedJob: self._onRegistrationDone(finishedJob, onFinished))

    def _onRegistrationDone(self, job, onFinished) -> None:
        registered, reports = onFinished(job)  # raises with the job's error message when it failed
        node = self._parameterNode
        node.registeredVolumes = registered
        self.ui.registrationResultsTable.setRowCount(len(reports))
        for row, report in enumerate(reports):
            cells = [report["modality"], f"{report['metric_before']:.3f}", f"{report['metric_after']:.3f}", f"{report['time_total_s']:.1f}"]
            for column, text in enumerate(cells):
                self.ui.registrationResultsTable.setItem(row, column, qt.QTableWidgetItem(text))
        failed = [r["modality"] for r in reports if not r["metric_improved"]]
        self.ui.statusLabel.text = _("Co-registration done.") if not failed else _(
            "Similarity went down for {names}: the registration has probably failed; check the overlay.").format(names=", ".join(failed))
        if registered:
            node.compareVolume = registered[0]
            self.updateCompareView()

    def updateCompareView(self, *args) -> None:
        node = self._parameterNode
        if node is None or not node.referenceVolume or not node.compareVolume:
            return
        if node.compareMode == "checkerboard":
            board = self.logic.checkerboardVolume(node.referenceVolume, node.compareVolume)
            slicer.util.setSliceViewerLayers(background=board, foreground=None, fit=False)
        else:
            slicer.util.setSliceViewerLayers(background=node.referenceVolume, foreground=node.compareVolume,
                                             foregroundOpacity=node.compareOpacity, fit=False)

    # -- MONAI Label -------------------------------------------------------------------------------

    def onConnect(self) -> None:
        from ElastixMonaiLabelLib.jobs import ThreadJob

        client = self.logic.client(self._parameterNode.serverUrl)
        self.ui.serverStatusLabel.text = _("Connecting to {url}...").format(url=client.url)
        self._startJob("connection", ThreadJob(lambda report, cancel: client.info(), "info"), self._onConnected)

    def _onConnected(self, job) -> None:
        if job.error:
            self._serverInfo = {}
            self.ui.serverStatusLabel.text = _("Not connected: {error}").format(error=job.error)
            return
        self._serverInfo = job.result
        models = self.logic.segmentationModels(self._serverInfo)
        current = self._parameterNode.model
        self.ui.modelComboBox.clear()
        for name in models:
            self.ui.modelComboBox.addItem(name)
        if current in models:
            self.ui.modelComboBox.currentText = current
        self.ui.strategyComboBox.clear()
        for name in self._serverInfo.get("strategies", {}):
            self.ui.strategyComboBox.addItem(name)
        self.ui.serverStatusLabel.text = _("Connected: {name}, {count} models").format(
            name=self._serverInfo.get("name", "MONAI Label"), count=len(models))
        self._showModelInfo()

    def _showModelInfo(self, *args) -> None:
        model = self._serverInfo.get("models", {}).get(self.ui.modelComboBox.currentText, {})
        self.ui.modelInfoLabel.text = self.logic.describeModel(model) if model else ""

    def onSegment(self) -> None:
        if "segmentation" in self._jobs:
            self._jobs["segmentation"][0].cancel()
            return
        node = self._parameterNode
        if not self.logic.uploadAllowed(node.serverUrl) and not slicer.util.confirmYesNoDisplay(
            _("The co-registered images will be uploaded to the MONAI Label server at {url} and stored in its datastore. "
              "Only do this if you are allowed to share these images with that server.\n\nUpload to this server now and "
              "from now on?").format(url=node.serverUrl), windowTitle=_("Upload images?")):
            return
        self.logic.grantUpload(node.serverUrl)
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            volumes, names = self.logic.caseVolumes(node)
            job, onFinished = self.logic.startSegmentation(node.serverUrl, node.model, volumes, names)
            self.ui.statusLabel.text = _("Sending {names} to {model}...").format(names=", ".join(names), model=node.model) + (
                "" if len(volumes) > len([v for v in node.movingVolumes if v is not None]) else
                " " + _("(only the reference: co-register to send every modality)"))
            self._startJob("segmentation", job, lambda finishedJob: self._onSegmented(finishedJob, onFinished))

    def _onSegmented(self, job, onFinished) -> None:
        node = self._parameterNode
        if node.segmentation is None:
            node.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", node.referenceVolume.GetName() + "_segmentation")
        imageId, count = onFinished(job, node.segmentation, node.referenceVolume)
        node.imageId = imageId
        self.ui.statusLabel.text = _("{count} structures received; edit them, then submit.").format(count=count)
        self.onEditSegmentation()

    def onEditSegmentation(self) -> None:
        node = self._parameterNode
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(node.segmentation)
        editor.setSourceVolumeNode(node.referenceVolume)

    def onSubmit(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not submit the label."), waitCursor=True):
            job = self.logic.startSubmit(node.serverUrl, node.imageId, node.segmentation, node.referenceVolume)
            self._startJob("submit", job, self._onSubmitted)

    def _onSubmitted(self, job) -> None:
        if job.error:
            raise RuntimeError(job.error)
        self.ui.statusLabel.text = _("Label saved on the server for {image}.").format(image=self._parameterNode.imageId)

    def onNextSample(self) -> None:
        node = self._parameterNode
        job, onFinished = self.logic.startNextSample(node.serverUrl, node.strategy)
        self._startJob("next sample", job, lambda finishedJob: self._onNextSample(finishedJob, onFinished))

    def _onNextSample(self, job, onFinished) -> None:
        node = self._parameterNode
        imageId, channels = onFinished(job)
        names = list(channels)
        node.referenceVolume, node.referenceModality = channels[names[0]], names[0]
        node.movingVolumes, node.movingModalities = [channels[n] for n in names[1:]], names[1:]
        node.registeredVolumes = [channels[n] for n in names[1:]]  # a datastore case is co-registered already
        node.imageId = imageId
        self._refreshMovingTable()
        self.ui.statusLabel.text = _("Next case: {image} ({channels}).").format(image=imageId, channels=", ".join(names))

    def onTrain(self) -> None:
        from ElastixMonaiLabelLib.jobs import ThreadJob

        node = self._parameterNode
        client = self.logic.client(node.serverUrl)
        if self._training:
            self._startJob("stop training", ThreadJob(lambda report, cancel: client.train_stop(), "train-stop"), self._onTrainingPolled)
            return
        model = node.model if node.model in self._serverInfo.get("trainers", {}) else next(iter(self._serverInfo.get("trainers", {})), None)
        if model is None:
            slicer.util.errorDisplay(_("This server has no trainable model."))
            return
        epochs = node.trainingEpochs
        self._training = True
        self._startJob("training", ThreadJob(lambda report, cancel: client.train_start(model, {"max_epochs": epochs}), "train"),
                       self._onTrainingPolled)

    def _onTrainingPolled(self, job) -> None:
        from ElastixMonaiLabelLib.client import training_progress
        from ElastixMonaiLabelLib.jobs import JobEvent, ThreadJob

        if job.error:
            self._training = False
            self.ui.serverStatusLabel.text = _("Training: {error}").format(error=job.error)
            return
        status = job.result if isinstance(job.result, dict) and "status" in job.result else {"status": "SUBMITTED"}
        fraction, message = training_progress(status, self._parameterNode.trainingEpochs)
        self._showEvent("training", JobEvent("progress", message, fraction))
        self.ui.serverStatusLabel.text = message
        self._training = status.get("status") in ("SUBMITTED", "QUEUED", "RUNNING")
        if self._training:  # ask again in a few seconds, off the GUI thread
            client = self.logic.client(self._parameterNode.serverUrl)

            def poll(report, cancel):
                time.sleep(3.0)
                return client.train_status()

            self._startJob("training", ThreadJob(poll, "train-status"), self._onTrainingPolled)
        else:
            self.ui.trainingProgressBar.visible = False


#
# Logic
#


class ElastixMonaiLabelLogic(ScriptedLoadableModuleLogic):
    """Converts between nodes and files; the work itself is ElastixMonaiLabelLib's. Usable without the GUI:
    every ``start...`` method returns a job (poll it, or call ``wait``) and a function that turns the finished
    job into nodes; the plain methods (``registerVolumes``, ``segment``, ``submit``) block.
    """

    def getParameterNode(self):
        return ElastixMonaiLabelParameterNode(super().getParameterNode())

    # -- environment -------------------------------------------------------------------------------

    @staticmethod
    def ensureDependencies() -> None:
        """Install itk-elastix, nibabel and scipy into Slicer's Python on first use, after asking the user."""
        import slicer.packaging

        requirements = os.path.join(os.path.dirname(__file__), "Resources", "requirements.txt")
        slicer.packaging.pip_ensure(slicer.packaging.load_requirements(requirements), requester="ElastixMonaiLabel")

    @staticmethod
    def slicerElastixExecutables():
        """SlicerElastix's elastix/transformix and their environment, or None when SlicerElastix is missing."""
        try:
            import Elastix
        except ImportError:
            return None
        elastixLogic = Elastix.ElastixLogic()
        binDir = elastixLogic.getElastixBinDir()
        return {
            "elastix": os.path.join(binDir, elastixLogic.elastixFilename),
            "transformix": os.path.join(binDir, elastixLogic.transformixFilename),
            "env": elastixLogic.getElastixEnv(),
        }

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's Python launcher, which runs the core's command line in a background process."""
        python = shutil.which("PythonSlicer")
        if not python:
            raise RuntimeError(_("PythonSlicer was not found next to Slicer; cannot run the registration in the background."))
        return python

    @staticmethod
    def workFolder(prefix) -> str:
        return tempfile.mkdtemp(prefix=f"ElastixMonaiLabel-{prefix}-", dir=slicer.app.temporaryPath)

    # -- nodes <-> images ----------------------------------------------------------------------------

    @staticmethod
    def worldIJKToRAS(volumeNode):
        """IJK-to-RAS of the volume in world coordinates: a linear parent transform is part of its geometry."""
        ijkToRAS = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(ijkToRAS)
        matrix = slicer.util.arrayFromVTKMatrix(ijkToRAS)
        parent = volumeNode.GetParentTransformNode()
        if parent is not None:
            if not parent.IsTransformToWorldLinear():
                raise ValueError(_("{name} is under a non-linear transform; harden it first.").format(name=volumeNode.GetName()))
            toWorld = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(toWorld)
            matrix = slicer.util.arrayFromVTKMatrix(toWorld) @ matrix
        return matrix

    def imageFromVolumeNode(self, volumeNode):
        """The volume as an ITK image (LPS) in world coordinates; the conversion is the core's (geometry.py)."""
        from ElastixMonaiLabelLib.geometry import image_from_slicer

        return image_from_slicer(slicer.util.arrayFromVolume(volumeNode).astype(np.float32), self.worldIJKToRAS(volumeNode))

    @staticmethod
    def updateVolumeNodeFromImage(volumeNode, image) -> None:
        from ElastixMonaiLabelLib.geometry import image_to_slicer

        array, ijkToRAS = image_to_slicer(image)
        slicer.util.updateVolumeFromArray(volumeNode, array)
        volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRAS))

    def writeVolumeNode(self, volumeNode, path) -> str:
        from ElastixMonaiLabelLib.images import write_volume

        write_volume(self.imageFromVolumeNode(volumeNode), path)
        return str(path)

    # -- registration ---------------------------------------------------------------------------------

    def resolveEngine(self, engine):
        """("executable", SlicerElastix's executables) or ("itk", None) for engine auto/executable/itk."""
        executables = self.slicerElastixExecutables() if engine in ("auto", "executable") else None
        if engine == "executable" and executables is None:
            raise RuntimeError(_("The 'executable' engine needs the SlicerElastix extension; install it or choose 'itk'."))
        return ("executable", executables) if executables else ("itk", None)

    def startRegistration(self, referenceVolume, movingVolumes, referenceModality, movingModalities, preset="brain-rigid",
                          brainMask=None, engine="auto", placeUnderTransforms=True):
        """Write the inputs, start ``register`` in a background process; return (job, onFinished).

        ``onFinished(job)`` loads the results into ``<moving>_registered`` volumes (and transforms) and returns
        (registered volume nodes, reports); it raises with the job's message when the job failed.
        """
        from ElastixMonaiLabelLib.jobs import registration_job
        from ElastixMonaiLabelLib.multimodal import check_modality_names

        pairs = [(v, m) for v, m in zip(movingVolumes, movingModalities) if v is not None]
        if not referenceVolume or not pairs:
            raise ValueError(_("A reference volume and at least one moving volume are needed."))
        names = check_modality_names([referenceModality] + [m for _v, m in pairs])
        self.ensureDependencies()
        engineName, executables = self.resolveEngine(engine)
        for volume, _m in pairs:  # re-registering starts from the original position, not from an earlier result
            parent = volume.GetParentTransformNode()
            if parent is not None and parent.GetAttribute("ElastixMonaiLabel.registration") == volume.GetID():
                volume.SetAndObserveTransformNodeID(None)
        folder = self.workFolder("registration")
        referencePath = self.writeVolumeNode(referenceVolume, os.path.join(folder, f"{names[0]}.nii.gz"))
        movingPaths = [self.writeVolumeNode(v, os.path.join(folder, f"{n}.nii.gz")) for (v, _m), n in zip(pairs, names[1:])]
        maskPath = self.writeVolumeNode(brainMask, os.path.join(folder, "mask.nii.gz")) if brainMask else None
        job = registration_job(
            self.pythonExecutable(), referencePath, movingPaths, os.path.join(folder, "out"), preset=preset, engine=engineName,
            reference_mask=maskPath, elastix=executables and executables["elastix"],
            transformix=executables and executables["transformix"], env=executables and executables["env"],
        )
        logging.info(f"ElastixMonaiLabel: {' '.join(job.command)}")

        def onFinished(finishedJob):
            try:
                if finishedJob.error:
                    raise RuntimeError(finishedJob.error)
                return self.loadRegistrationResults(finishedJob.result, [v for v, _m in pairs], placeUnderTransforms)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return job, onFinished

    def loadRegistrationResults(self, results, movingVolumes, placeUnderTransforms=True):
        """Registered volumes as ``<moving>_registered`` nodes, transforms as ``<moving>_to_reference`` nodes."""
        from ElastixMonaiLabelLib.elastix_transforms import read_linear_transform
        from ElastixMonaiLabelLib.geometry import lps_to_ras_transform
        from ElastixMonaiLabelLib.images import read_volume

        registered, reports = [], []
        for result, moving in zip(results, movingVolumes):
            name = moving.GetName()
            volume = slicer.mrmlScene.GetFirstNodeByName(name + "_registered")
            if volume is None or not volume.IsA("vtkMRMLScalarVolumeNode"):
                volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name + "_registered")
            self.updateVolumeNodeFromImage(volume, read_volume(result["files"]["volume"]))
            volume.CreateDefaultDisplayNodes()
            volume.GetDisplayNode().SetAndObserveColorNodeID(moving.GetDisplayNode().GetColorNodeID() if moving.GetDisplayNode() else "vtkMRMLColorTableNodeGrey")
            transformPath = result["files"]["transform"]
            transform = slicer.mrmlScene.GetFirstNodeByName(name + "_to_reference")
            if transform is not None:
                slicer.mrmlScene.RemoveNode(transform)
            if transformPath.endswith(".tfm"):
                transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name + "_to_reference")
                # The core's matrix maps reference points to moving points (LPS): Slicer's "transform from parent".
                fromParent = lps_to_ras_transform(read_linear_transform(transformPath))
                transform.SetMatrixTransformFromParent(slicer.util.vtkMatrixFromArray(fromParent))
            else:
                transform = slicer.util.loadTransform(transformPath)  # ITK displacement field; Slicer converts LPS
                transform.SetName(name + "_to_reference")
            transform.SetAttribute("ElastixMonaiLabel.registration", moving.GetID())
            if placeUnderTransforms and transformPath.endswith(".tfm"):
                moving.SetAndObserveTransformNodeID(transform.GetID())
            registered.append(volume)
            reports.append(result["report"])
        return registered, reports

    def registerVolumes(self, referenceVolume, movingVolumes, referenceModality, movingModalities, timeout=1800, **options):
        """Blocking co-registration (scripts, self-test): returns (registered volume nodes, reports)."""
        job, onFinished = self.startRegistration(referenceVolume, movingVolumes, referenceModality, movingModalities, **options)
        job.wait(timeout=timeout, on_event=lambda event: logging.info(event.message) if event.kind == "log" else None)
        return onFinished(job)

    def checkerboardVolume(self, referenceVolume, otherVolume, squares=8):
        """A ``<other>_checkerboard`` volume: blocks of the reference and the registered volume (same grid)."""
        from ElastixMonaiLabelLib.figures import checkerboard

        board = checkerboard(slicer.util.arrayFromVolume(referenceVolume), slicer.util.arrayFromVolume(otherVolume), squares)
        name = otherVolume.GetName() + "_checkerboard"
        boardVolume = slicer.mrmlScene.GetFirstNodeByName(name) or slicer.modules.volumes.logic().CloneVolume(referenceVolume, name)
        slicer.util.updateVolumeFromArray(boardVolume, board)
        return boardVolume

    # -- MONAI Label ------------------------------------------------------------------------------------

    @staticmethod
    def client(url):
        from ElastixMonaiLabelLib.client import MonaiLabelClient

        return MonaiLabelClient(url, timeout=600.0)

    @staticmethod
    def consentStore():
        from ElastixMonaiLabelLib.consent import ConsentStore

        settingsDir = os.path.dirname(slicer.app.slicerUserSettingsFilePath)
        return ConsentStore(os.path.join(settingsDir, "ElastixMonaiLabel", "upload-consent.json"))

    def uploadAllowed(self, url) -> bool:
        return self.consentStore().granted(url)

    def grantUpload(self, url) -> None:
        self.consentStore().grant(url)

    @staticmethod
    def segmentationModels(info):
        return [name for name, model in info.get("models", {}).items() if model.get("type", "segmentation") == "segmentation"]

    @staticmethod
    def describeModel(model) -> str:
        channels = model.get("channels", {})
        if "all_of" in channels:
            needs = _("needs channels {names}").format(names=", ".join(channels["all_of"]))
        elif "any_of" in channels:
            needs = _("reads one of {names}").format(names=", ".join(channels["any_of"]))
        else:
            needs = _("reads one volume")
        trained = "" if model.get("trained", True) else _(" (not trained yet)")
        return f"{model.get('description', '')} - {needs}{trained}"

    @staticmethod
    def caseVolumes(parameterNode):
        """(volumes, channel names) of the case to send: the reference and each registered (or aligned) modality."""
        registered = [v for v in parameterNode.registeredVolumes if v is not None]
        moving = [v for v in parameterNode.movingVolumes if v is not None]
        volumes = [parameterNode.referenceVolume] + (registered if len(registered) == len(moving) else [])
        names = [parameterNode.referenceModality] + (list(parameterNode.movingModalities)[: len(volumes) - 1])
        return volumes, names

    def writeCase(self, volumes, names, path) -> str:
        """One 4D channels-last NIfTI (the project's multimodal contract); every volume on the reference grid."""
        from ElastixMonaiLabelLib.multimodal import check_modality_names, write_case

        write_case(dict(zip(check_modality_names(names), (self.imageFromVolumeNode(v) for v in volumes))), path)
        return str(path)

    def startSegmentation(self, url, model, volumes, names):
        """Write the case, then upload + infer on a thread; return (job, onFinished(job, segmentationNode, reference))."""
        from ElastixMonaiLabelLib.jobs import ThreadJob
        from ElastixMonaiLabelLib.multimodal import case_id

        if not self.uploadAllowed(url):
            raise PermissionError(_("Uploading to {url} was not allowed by the user.").format(url=url))
        self.ensureDependencies()
        folder = self.workFolder("segmentation")
        casePath = self.writeCase(volumes, names, os.path.join(folder, "case.nii.gz"))
        imageId = case_id(volumes[0].GetName(), casePath)
        client = self.client(url)

        def work(report, cancel):
            report(None, _("uploading {image}").format(image=imageId))
            client.upload_image(casePath, imageId)
            cancel.raise_if_cancelled()
            report(None, _("waiting for {model}").format(model=model))
            return client.infer(model, imageId, os.path.join(folder, "label.nii.gz"))

        def onFinished(job, segmentationNode, referenceVolume):
            try:
                if job.error:
                    raise RuntimeError(job.error)
                count = self.loadSegmentation(job.result.label_path, job.result.params, segmentationNode, referenceVolume)
                return imageId, count
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return ThreadJob(work, "infer"), onFinished

    def loadSegmentation(self, labelPath, params, segmentationNode, referenceVolume) -> int:
        """Label map file -> segments named and coloured from the server's label table; returns the segment count."""
        from ElastixMonaiLabelLib.geometry import image_to_slicer
        from ElastixMonaiLabelLib.images import grid_mismatch, read_volume
        from ElastixMonaiLabelLib.segments import segments_from_params

        label = read_volume(labelPath, pixel_type="unsigned char")
        problem = grid_mismatch(label, self.imageFromVolumeNode(referenceVolume))
        if problem:
            raise ValueError(_("The server's label map is not on the reference grid ({problem}).").format(problem=problem))
        array, _ijkToRAS = image_to_slicer(label)
        present = np.unique(array)
        specs = [s for s in segments_from_params(params, present) if s.value in present]
        segmentation = segmentationNode.GetSegmentation()
        segmentation.RemoveAllSegments()
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolume)
        wasModified = segmentationNode.StartModify()
        try:
            for spec in specs:
                segmentId = segmentation.AddEmptySegment(spec.name, spec.name, list(spec.color))
                slicer.util.updateSegmentBinaryLabelmapFromArray((array == spec.value).astype(np.uint8), segmentationNode, segmentId, referenceVolume)
        finally:
            segmentationNode.EndModify(wasModified)
        return len(specs)

    def labelFileFromSegmentation(self, segmentationNode, referenceVolume, path) -> str:
        """The segments as one label map on the reference grid, values from the label table (by segment name)."""
        from ElastixMonaiLabelLib.geometry import image_from_slicer
        from ElastixMonaiLabelLib.images import write_volume
        from ElastixMonaiLabelLib.segments import labelmap_from_masks

        segmentation = segmentationNode.GetSegmentation()
        masks = {}
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            masks[segmentation.GetSegment(segmentId).GetName()] = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, referenceVolume) > 0
        write_volume(image_from_slicer(labelmap_from_masks(masks), self.worldIJKToRAS(referenceVolume)), path)
        return str(path)

    def startSubmit(self, url, imageId, segmentationNode, referenceVolume):
        """Write the edited segmentation as a label map and save it on the server as the case's final label."""
        from ElastixMonaiLabelLib.jobs import ThreadJob

        if not imageId:
            raise ValueError(_("Segment a case (or fetch one) first: the server needs to know which image this label is for."))
        folder = self.workFolder("submit")
        labelPath = self.labelFileFromSegmentation(segmentationNode, referenceVolume, os.path.join(folder, "label.nii.gz"))
        client = self.client(url)

        def work(report, cancel):
            try:
                return client.save_label(imageId, labelPath, tag="final")
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return ThreadJob(work, "save-label")

    def startNextSample(self, url, strategy):
        """Ask the strategy for the next case and download it; onFinished(job) -> (image id, {channel: volume node})."""
        from ElastixMonaiLabelLib.jobs import ThreadJob

        folder = self.workFolder("next")
        client = self.client(url)

        def work(report, cancel):
            sample = client.next_sample(strategy)
            if not sample or not sample.get("id"):
                raise RuntimeError(_("The server has no unlabelled case left for strategy {strategy}.").format(strategy=strategy))
            return sample["id"], client.download_image(sample["id"], os.path.join(folder, "case.nii.gz"))

        def onFinished(job):
            try:
                if job.error:
                    raise RuntimeError(job.error)
                imageId, path = job.result
                return imageId, self.loadCase(path, imageId)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        return ThreadJob(work, "next-sample"), onFinished

    def loadCase(self, path, name):
        """A case file's channels as separate volume nodes (4D NIfTI loads with a wrong orientation in Slicer)."""
        from ElastixMonaiLabelLib.multimodal import read_case

        nodes = {}
        for channel, image in read_case(path).items():
            volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{name}_{channel}")
            self.updateVolumeNodeFromImage(volume, image)
            volume.CreateDefaultDisplayNodes()
            nodes[channel] = volume
        return nodes

    def segment(self, url, model, volumes, names, segmentationNode, referenceVolume, timeout=1800):
        """Blocking upload + infer + load (scripts, self-test); returns (image id, segment count)."""
        job, onFinished = self.startSegmentation(url, model, volumes, names)
        job.wait(timeout)
        return onFinished(job, segmentationNode, referenceVolume)

    def submit(self, url, imageId, segmentationNode, referenceVolume, timeout=600):
        return self.startSubmit(url, imageId, segmentationNode, referenceVolume).wait(timeout)

    # -- sample data ------------------------------------------------------------------------------------

    def generateSampleSubject(self, folder, seed=3, spacing=3.0):
        """Write a small generated subject (ElastixMonaiLabelLib.sampledata) and load its volumes."""
        from ElastixMonaiLabelLib.sampledata import SubjectSpec, generate_subject

        description = generate_subject(SubjectSpec(seed=seed, spacing_mm=spacing), folder)
        nodes = {name: slicer.util.loadVolume(os.path.join(folder, entry["file"])) for name, entry in description["modalities"].items()}
        return description, nodes


#
# Test
#


class ElastixMonaiLabelTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (and Slicer's CI): real co-registration of generated data checked against the known
    misalignment; with ELASTIXMONAILABEL_TEST_SERVER=<url> also infer -> segments -> names/colours -> save label."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_CoRegistrationAccuracy()
        self.setUp()
        self.test_SegmentationRoundTrip()

    def _subject(self):
        folder = os.path.join(slicer.app.temporaryPath, "ElastixMonaiLabelTest")
        logic = ElastixMonaiLabelLogic()
        logic.ensureDependencies()
        description, nodes = logic.generateSampleSubject(folder)
        return logic, folder, description, nodes

    def test_CoRegistrationAccuracy(self):
        self.delayDisplay("Co-registering a generated 3 mm subject in a background process")
        import itk

        from ElastixMonaiLabelLib.evaluation import registration_error
        from ElastixMonaiLabelLib.geometry import ras_to_lps_transform, voxel_points

        logic, folder, description, nodes = self._subject()
        registered, reports = logic.registerVolumes(nodes["t1"], [nodes["t2"], nodes["flair"]], "t1", ["t2", "flair"],
                                                    placeUnderTransforms=True)
        reference = logic.imageFromVolumeNode(nodes["t1"])
        brain = itk.array_from_image(itk.imread(os.path.join(folder, "brain_mask.nii.gz"))) > 0
        for modality, volume, report in zip(("t2", "flair"), registered, reports):
            self.assertGreater(report["metric_after"], report["metric_before"])
            self.assertEqual(volume.GetImageData().GetDimensions(), nodes["t1"].GetImageData().GetDimensions())
            transform = nodes[modality].GetParentTransformNode()
            self.assertIsNotNone(transform)
            fromParent = vtk.vtkMatrix4x4()
            transform.GetMatrixTransformFromParent(fromParent)
            estimated = ras_to_lps_transform(slicer.util.arrayFromVTKMatrix(fromParent))
            truth = np.array(description["modalities"][modality]["matrix_lps"])
            error = registration_error(estimated, truth, voxel_points(reference, brain))
            self.assertLess(error["mean_mm"], 1.0)
            self.delayDisplay(f"{modality}: mean error {error['mean_mm']:.2f} mm")

    def test_SegmentationRoundTrip(self):
        url = os.environ.get("ELASTIXMONAILABEL_TEST_SERVER")
        if not url:
            self.delayDisplay("ELASTIXMONAILABEL_TEST_SERVER not set: segmentation round trip skipped")
            return
        from ElastixMonaiLabelLib.labels import SYNTHSEG_STRUCTURES

        logic, _folder, _description, nodes = self._subject()
        registered, _reports = logic.registerVolumes(nodes["t1"], [nodes["t2"], nodes["flair"]], "t1", ["t2", "flair"])
        logic.grantUpload(url)  # setting the variable is the tester's consent
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "t1_segmentation")
        imageId, count = logic.segment(url, "atlas_registration", [nodes["t1"], *registered], ["t1", "t2", "flair"],
                                       segmentation, nodes["t1"])
        self.assertGreater(count, 20)
        colours = {s.name: tuple(c / 255 for c in s.color) for s in SYNTHSEG_STRUCTURES}
        segments = segmentation.GetSegmentation()
        for index in range(segments.GetNumberOfSegments()):
            segment = segments.GetNthSegment(index)
            self.assertIn(segment.GetName(), colours)
            np.testing.assert_allclose(segment.GetColor(), colours[segment.GetName()], atol=1e-3)
        logic.submit(url, imageId, segmentation, nodes["t1"])
        self.delayDisplay(f"Segmentation round trip passed: {count} structures, label saved for {imageId}")
