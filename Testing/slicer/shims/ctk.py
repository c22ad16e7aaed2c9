"""Head-less stand-in for PythonQt's ``ctk`` module (see README.md): ctk.ctkAnything is one empty class per name,
made by the same hook as qt's (CTK's names all start with "ctk", so they never meet Qt's)."""

import qt

__getattr__ = qt.__getattr__  # PEP 562 looks the hook up in this module's namespace
