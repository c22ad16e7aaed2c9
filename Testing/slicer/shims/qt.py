"""Head-less stand-in for PythonQt's ``qt`` module: see README.md (the one place that says what each name stands in for)."""

_classes: dict[str, type] = {}


def __getattr__(name: str) -> type:  # PEP 562: qt.QAnything is one empty class per name
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _classes:
        _classes[name] = type(name, (), {"__module__": __name__, "__init__": lambda self, *args, **kwargs: None})
    return _classes[name]


class QSettings:
    """All instances share one in-memory store (Slicer's settings file)."""

    _store: dict[str, object] = {}

    def __init__(self, *args) -> None:
        pass

    def value(self, key, defaultValue=None):
        return self._store.get(key, defaultValue)

    def setValue(self, key, value) -> None:
        self._store[key] = value

    def contains(self, key) -> bool:
        return key in self._store

    def remove(self, key) -> None:
        self._store.pop(key, None)


class QMessageBox:
    """Only the enum values (Qt's) that slicer.util's message functions read before they see testing mode."""

    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4
    Ok, Yes, No, Cancel = 0x00000400, 0x00004000, 0x00010000, 0x00400000

    def __init__(self, *args) -> None:
        pass


class QEventLoop:
    WaitForMoreEvents = 0x04  # QEventLoop::ProcessEventsFlag


class QTimer:
    """Records whether it runs; there is no event loop to fire it (headless.SlicerApplication.processEvents waits)."""

    def __init__(self, *args) -> None:
        self.active = False

    def start(self, msec=None) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False
