"""Plug-ins: one file per model builder or batcher, found by looking in a folder.

A plug-in's name is its file name without `.py`, and its one-line description is the first line of
the file's docstring, so `--list` and config validation work without importing (or running) any
plug-in; the class is imported only when the plug-in is used. The folders of a plug-in package
are its `__path__`: a program may add one of its own (`sequencer.builders.__path__.append(folder)`),
so that its models need not live inside the installed package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

from sequencer.errors import ConfigError


def discover(*folders: Path | str) -> dict[str, str]:
    """{name: one-line description} of the plug-in files in `folders` (a package's `__path__`), sorted by name."""
    found = {}
    for path in sorted((path for folder in folders for path in Path(folder).glob("*.py")), key=lambda p: p.name):
        if path.name.startswith("_"):
            continue
        try:
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        except SyntaxError as error:
            raise ConfigError(f"{path}:{error.lineno}: the plug-in is not valid Python ({error.msg})") from None
        found[path.stem] = docstring.strip().split("\n")[0]
    return found


def load_class(package: str, name: str, base: type) -> type:
    """The one subclass of `base` defined in the plug-in module `package.name`."""
    module = importlib.import_module(f"{package}.{name}")
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, base) and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise ConfigError(f"{module.__file__} must define exactly one {base.__name__} subclass, not {len(classes)}")
    return classes[0]
