"""Head-less stand-in for PythonQt's ``ctk`` module: see README.md."""

_classes: dict[str, type] = {}


def __getattr__(name: str) -> type:  # PEP 562: ctk.ctkAnything is one empty class per name
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in _classes:
        _classes[name] = type(name, (), {"__module__": __name__, "__init__": lambda self, *args, **kwargs: None})
    return _classes[name]
