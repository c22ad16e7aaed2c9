"""ElastixMonaiLabelLib: the pure-Python core of ElastixMonaiLabel.

Shared by the 3D Slicer module, the MONAI Label server app, the command line and
notebooks. Imports no slicer, qt or vtk; heavy dependencies (itk, matplotlib) are
imported where they are used.
"""

__version__ = "0.1.0"
