"""Plugins: methods and backbones from the user's own modules, with their code in the cells' identity.

A config names them by import path or by an installed package's entry point::

    methods: [finetune, {name: my-method, class: "mypkg.mod:MyMethod", weight: 0.5}]
    model: {backbone: "mypkg.nets:make_net", options: {width: 64}}

or, for a package that declares entry points (``pyproject.toml``)::

    [project.entry-points."transferlab.methods"]
    my-method = "mypkg.mod:MyMethod"
    [project.entry-points."transferlab.backbones"]
    my-net = "mypkg.nets:make_net"

and ``methods: [my-method]``, ``model: {backbone: my-net}``. Modules are imported from ``sys.path``, with the
config's folder tried first (so a ``mymethods.py`` beside the config works as is).

- A **method** is a subclass of :class:`adapt.methods.Method` (directly or through a built-in such as
  :class:`adapt.methods.Finetune`); its ``PARAMS`` are checked like a built-in's.
- A **backbone** is a callable ``make_net(input_shape, **options) -> nn.Module`` whose module maps a batch
  ``(N, *input_shape)`` (images as float in [0, 1]) to features ``(N, D)``; ``D`` is its ``out_features``
  attribute, or found by one forward pass on zeros. ``model.options`` is passed as keyword arguments.

**Code identity.** A plugin's ``{"path", "module", "qualname", "sha256"}`` (the hash of its source file's
bytes) is part of each of its cells' keys: an edited plugin makes different cells, never old results
reported as new ones. The trainer checks the hash again where the cell runs (:func:`verify_code`), so a file
edited mid-run fails its cells instead of recording another code's results under the planned key.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import TransferlabError

METHOD_GROUP = "transferlab.methods"
BACKBONE_GROUP = "transferlab.backbones"


class PluginError(TransferlabError):
    """A plugin path or entry point that cannot be loaded, or loads something of the wrong kind."""


def is_import_path(text: str) -> bool:
    """``module.sub:Attr`` (a colon between a module path and an attribute)."""
    module, colon, attr = text.partition(":")
    return bool(colon and module and attr)


def load_object(path: str, search: Path | None = None) -> Any:
    """The object at ``module.sub:Attr.inner``; ``search`` (the config's folder) is tried before ``sys.path``."""
    if not is_import_path(path):
        raise PluginError(f"{path!r}: expected 'module.path:Name' (e.g. 'mypkg.methods:MyMethod')")
    module_name, _, attr = path.partition(":")
    if search is not None and str(search) not in sys.path:
        # stays there: process-pool workers start with the driver's sys.path and import the module again
        sys.path.insert(0, str(search))
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        where = f" (looked in {search} and sys.path)" if search is not None else ""
        raise PluginError(f"{path!r}: cannot import module {module_name!r}{where}: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's module raised while importing
        raise PluginError(f"{path!r}: importing {module_name!r} failed: {type(err).__name__}: {err}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{path!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def find_entry_point(group: str, name: str) -> str | None:
    """The ``module:attr`` value of entry point ``name`` in ``group``, or ``None``."""
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.value
    return None


def entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in entry_points(group=group)})


def code_identity(obj: Any, path: str) -> dict:
    """What identifies a plugin's code: its import ``path``, module, qualified name and source-file hash."""
    module = getattr(obj, "__module__", None) or ""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "")
    try:
        source = inspect.getsourcefile(obj) or inspect.getfile(obj)
        digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    except (TypeError, OSError):
        raise PluginError(f"{path!r}: its source file cannot be read, so an edit could not be told apart; "
                          f"plugins must be defined in a .py file") from None
    return {"path": path, "module": module, "qualname": qualname, "sha256": digest}


def resolve_method(name: str, class_path: str | None = None, search: Path | None = None) -> tuple[type, dict]:
    """A plugin method class and its code identity: from ``class_path``, else the entry point ``name``."""
    from .methods.base import Method

    path = class_path or find_entry_point(METHOD_GROUP, name)
    if path is None:
        raise PluginError(f"unknown method {name!r}")
    cls = load_object(path, search)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise PluginError(f"{path!r} is {cls!r}, not a subclass of adapt.methods.Method")
    if cls.name != name:
        # the loop and records name the method by its registered name; a plugin class answers to the config's
        cls = type(cls.__name__, (cls,), {"name": name, "__module__": cls.__module__,
                                         "__qualname__": cls.__qualname__})
    return cls, code_identity(cls, path)


def resolve_backbone(name: str, search: Path | None = None) -> tuple[Callable, dict]:
    """A plugin backbone factory and its code identity: ``name`` is an import path or an entry point."""
    path = name if is_import_path(name) else find_entry_point(BACKBONE_GROUP, name)
    if path is None:
        raise PluginError(f"unknown backbone {name!r}")
    factory = load_object(path, search)
    if not callable(factory):
        raise PluginError(f"{path!r} is {factory!r}, not a callable make_net(input_shape, **options)")
    return factory, code_identity(factory, path)


def verify_code(code: Mapping | None) -> None:
    """Refuse (``PluginError``) to run a cell whose plugin source changed since the cell was planned."""
    for role, ident in (code or {}).items():
        obj = load_object(ident["path"])
        now = code_identity(obj, ident["path"])["sha256"]
        if now != ident["sha256"]:
            raise PluginError(f"{role} plugin {ident['path']!r} changed since the run was planned (source hash "
                              f"{now[:12]}, planned {ident['sha256'][:12]}); rerun to plan with the new code")


def method_class(name: str, code: Mapping | None = None) -> type:
    """The method class a cell names: a built-in from the registry, or its plugin (``code['method']``)."""
    from .methods import METHODS

    ident = (code or {}).get("method")
    if ident is None:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
        return METHODS[name]
    return resolve_method(name, ident["path"])[0]


def build_plugin_backbone(name: str, input_shape, options: Mapping | None) -> tuple[Any, int]:
    """The plugin backbone module and its feature width (``out_features`` or one forward pass on zeros)."""
    import torch

    factory, _ = resolve_backbone(name)
    try:
        net = factory(tuple(input_shape), **dict(options or {}))
    except TypeError as err:
        raise PluginError(f"backbone {name!r}: make_net(input_shape, **model.options) failed: {err}") from None
    if not isinstance(net, torch.nn.Module):
        raise PluginError(f"backbone {name!r} returned {type(net).__name__}, expected a torch.nn.Module")
    width = getattr(net, "out_features", None)
    if not isinstance(width, int):
        was = net.training
        net.eval()
        with torch.no_grad():
            out = net(torch.zeros((2, *input_shape)))
        net.train(was)
        if out.dim() != 2:
            raise PluginError(f"backbone {name!r} gives features of shape {tuple(out.shape)}; expected (N, D)")
        width = int(out.shape[1])
    return net, width
