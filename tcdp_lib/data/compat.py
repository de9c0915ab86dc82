"""Fixes for the simulator stack on Python 3.11, applied once before any environment is made.

Each fix changes objects in memory only (nothing in site-packages) and names its cause.
``apply()`` is idempotent; :func:`tcdp_lib.data.envs.make_env` and the dataset loader call it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import sys
import types
import warnings

_APPLIED: set[str] = set()

# Families whose dsrl registration module imported, and the error of those that did not.
FAMILY_STATUS: dict[str, str | None] = {}

_DSRL_FAMILY_MODULES = {
    "bullet": "dsrl.offline_bullet_safety_gym",
    "safety_gymnasium": "dsrl.offline_safety_gymnasium",
    "metadrive": "dsrl.offline_metadrive",
}
# dsrl's family modules register entry points lazily: the simulator package itself is imported
# here too, so a missing package is reported now rather than at the first make().
_SIMULATOR_MODULES = {
    "bullet": "bullet_safety_gym",
    "safety_gymnasium": "safety_gymnasium",
    "metadrive": "metadrive",
}


def fix_safety_gymnasium_colors() -> None:
    """Safety-Gymnasium on Python 3.11: ``ValueError: mutable default <class 'numpy.ndarray'>``.

    Cause: ``safety_gymnasium.assets.color.COLOR`` holds ndarrays that the geom dataclasses use
    as field defaults; 3.11 rejects defaults whose class is unhashable. The geom modules are
    imported lazily at the first ``make()``, so replacing the values by views of an ndarray
    subclass with an identity hash, before that, lets the dataclasses build. Values are unchanged.
    """
    if "sg_colors" in _APPLIED:
        return
    import numpy as np

    hashable = type("HashableArray", (np.ndarray,), {"__hash__": object.__hash__})
    try:
        color = importlib.import_module("safety_gymnasium.assets.color")
    except ImportError:
        return
    for key, value in list(color.COLOR.items()):
        if type(value).__hash__ is None:
            color.COLOR[key] = np.asarray(value).view(hashable)
    _APPLIED.add("sg_colors")


def _has_real_descriptor(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    name = getattr(stream, "name", None)
    return isinstance(name, str) and name in ("<stdout>", "<stderr>")


def _stream_fd(stream) -> int | None:
    """The descriptor C code writes ``stream``'s output to: its own when it has a real one, else 1
    for the stream standing in for stdout (or named so), 2 for stderr, ``None`` otherwise."""
    if _has_real_descriptor(stream):
        return stream.fileno()
    if stream is sys.stdout or stream is sys.stderr:
        return 1 if stream is sys.stdout else 2
    name = str(getattr(stream, "name", "")).strip("<>")
    return {"stdout": 1, "stderr": 2}.get(name)


def _flush_c_streams() -> None:
    import ctypes

    try:
        ctypes.CDLL(None).fflush(None)  # fflush(NULL): every C stream's buffer
    except (OSError, AttributeError):
        pass


def fix_bullet_stream_redirect() -> None:
    """bullet-safety-gym inside a Jupyter kernel: ``undefined symbol: tder`` / ``fileno``, and
    pybullet's ``argv[0]=`` line in the notebook's output.

    Cause: ``bullet_safety_gym.envs.builder.RedirectStream`` dup2()s the stream's descriptor
    and dlsym()s libc's ``stream.name[1:-1]``; a kernel's ``sys.stderr`` has no real descriptor
    and is named ``stderr``, not ``<stderr>``. The module is imported with the real
    ``sys.__stderr__`` in place, and the redirect silences the descriptor C code writes to (1 for
    stdout, 2 for stderr) whatever Python's stream is: pybullet prints ``argv[0]=`` on fd 1 when
    a client connects, which a kernel (ipykernel captures fd 1) or pytest shows otherwise.
    """
    if "bullet_stream" in _APPLIED:
        return
    saved = sys.stdout, sys.stderr
    try:
        if sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        if sys.__stdout__ is not None:
            sys.stdout = sys.__stdout__
        builder = importlib.import_module("bullet_safety_gym.envs.builder")
    except ImportError:
        return
    finally:
        sys.stdout, sys.stderr = saved

    original = builder.RedirectStream
    if getattr(original, "_tcdp_safe", False):
        _APPLIED.add("bullet_stream")
        return

    class SafeRedirectStream(original):
        _tcdp_safe = True

        def __enter__(self):
            self._fd = _stream_fd(self.stream)
            if self._fd is None:
                return None
            with contextlib.suppress(Exception):
                self.stream.flush()  # Python's buffered output goes out before the redirect
            _flush_c_streams()
            self._saved = os.dup(self._fd)
            sink = os.open(os.devnull, os.O_WRONLY)
            os.dup2(sink, self._fd)
            os.close(sink)
            return None

        def __exit__(self, *exc):
            if self._fd is not None:
                _flush_c_streams()  # what C buffered inside the block goes to /dev/null
                os.dup2(self._saved, self._fd)
                os.close(self._saved)
            return None

    builder.RedirectStream = SafeRedirectStream
    _APPLIED.add("bullet_stream")


# numpy names MetaDrive 0.2.6.0 still uses, removed in numpy 1.24: the builtins they aliased.
_REMOVED_NUMPY_ALIASES = {"bool": bool, "float": float, "int": int, "object": object, "complex": complex,
                          "str": str}


class _NumpyWithAliases(types.ModuleType):
    """numpy, plus the removed aliases of :data:`_REMOVED_NUMPY_ALIASES`; everything else is numpy's."""

    def __init__(self, numpy_module):
        super().__init__("numpy", numpy_module.__doc__)
        self.__dict__.update(_REMOVED_NUMPY_ALIASES)
        self._numpy = numpy_module

    def __getattr__(self, name):  # only for names not yet looked up: each is then kept here
        value = getattr(self._numpy, name)
        setattr(self, name, value)
        return value


def _give_numpy_aliases(module, proxy) -> None:
    import numpy

    for name, value in list(vars(module).items()):
        if value is numpy:
            setattr(module, name, proxy)


class _MetaDriveModuleFinder(importlib.abc.MetaPathFinder):
    """Finds ``metadrive`` modules as usual; each, once executed, gets numpy with the old aliases."""

    def __init__(self, proxy):
        self.proxy = proxy

    def find_spec(self, fullname, path, target=None):
        if fullname != "metadrive" and not fullname.startswith("metadrive."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module, proxy = spec.loader.exec_module, self.proxy

        def exec_then_alias(module):
            exec_module(module)
            _give_numpy_aliases(module, proxy)

        spec.loader.exec_module = exec_then_alias  # this loader instance serves this module only
        return spec


def fix_metadrive_numpy_aliases() -> None:
    """MetaDrive 0.2.6.0 with numpy 1.26: ``AttributeError: module 'numpy' has no attribute 'bool'``.

    Cause: MetaDrive calls ``np.bool`` (the lidar, at every step), ``np.float`` and ``np.int``
    (its config and math helpers), aliases of the builtins that numpy 1.24 removed. numpy
    itself is left alone: each ``metadrive`` module, once imported, has its ``np`` replaced by
    a stand-in that adds those aliases and forwards every other name to numpy. A finder ahead
    of the usual ones does it for the modules imported later (MetaDrive imports some lazily),
    and modules already imported are done at once. The aliases are only used inside functions,
    so replacing the name after the module ran is enough.
    """
    if "md_numpy" in _APPLIED:
        return
    if importlib.util.find_spec("metadrive") is None:
        return
    import numpy

    proxy = _NumpyWithAliases(numpy)
    for name, module in list(sys.modules.items()):
        if module is not None and (name == "metadrive" or name.startswith("metadrive.")):
            _give_numpy_aliases(module, proxy)
    sys.meta_path.insert(0, _MetaDriveModuleFinder(proxy))
    _APPLIED.add("md_numpy")


def fix_metadrive_register() -> None:
    """MetaDrive 0.2.6.0 with gym 0.26: ``AttributeError: 'dict' object has no attribute 'env_specs'``.

    Cause: ``metadrive/__init__.py`` imports ``metadrive.register``, which registers MetaDrive's
    own ``MetaDrive-*`` ids through gym's pre-0.26 ``registry.env_specs``; in gym 0.26 the
    registry is a plain dict. dsrl registers the ``OfflineMetadrive-*`` ids itself, so that
    module is not needed: an empty module stands in for it, before ``metadrive`` is imported.
    """
    if "md_register" in _APPLIED:
        return
    if "metadrive.register" not in sys.modules and importlib.util.find_spec("metadrive") is not None:
        stub = types.ModuleType("metadrive.register", "Stands in for MetaDrive's gym<0.26 registrations "
                                "(see tcdp_lib.data.compat.fix_metadrive_register).")
        sys.modules["metadrive.register"] = stub
    _APPLIED.add("md_register")


WAYMO_PROTOS = "metadrive.utils.waymo_utils.protos"


def fix_metadrive_waymo_protos() -> None:
    """MetaDrive 0.2.6.0 with protobuf >= 4: ``TypeError: Descriptors cannot be created directly``.

    Cause: ``metadrive.utils.waymo_utils`` (imported by ``import metadrive``) imports its Waymo
    scenario protos in a ``try`` that expects an ``ImportError`` when protobuf is absent; those
    ``_pb2`` files were generated by a protoc older than 3.19, which protobuf 4+ refuses with a
    ``TypeError``. protobuf is here because Ray needs it (``ray[tune]``, protobuf 7). The DSRL
    MetaDrive tasks never read Waymo scenarios, so the protos package is marked as not importable
    (``None`` in ``sys.modules``): its import raises ``ModuleNotFoundError``, which MetaDrive's
    own ``try`` takes as "no protobuf", as before Ray was installed.
    """
    if "md_protos" in _APPLIED:
        return
    if WAYMO_PROTOS not in sys.modules and importlib.util.find_spec("metadrive") is not None:
        sys.modules[WAYMO_PROTOS] = None
    _APPLIED.add("md_protos")


def import_dsrl_families() -> dict[str, str | None]:
    """Import each dsrl family on its own and record which failed.

    Cause: ``dsrl/__init__.py`` imports the three families in one ``try``, so if one fails the
    later ones are silently not registered (and it prints the error). Here each family's
    registration module is imported separately; its messages (and gym's notice) are captured
    rather than printed. Returns ``{family: None | error text}``.
    """
    if FAMILY_STATUS:
        return FAMILY_STATUS
    sink = io.StringIO()
    with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importlib.import_module("dsrl")  # its own family import is silenced with the streams
        for family, module in _DSRL_FAMILY_MODULES.items():
            try:
                importlib.import_module(module)
                importlib.import_module(_SIMULATOR_MODULES[family])
                FAMILY_STATUS[family] = None
            except Exception as err:  # noqa: BLE001 - any failure means "family unavailable"
                FAMILY_STATUS[family] = f"{type(err).__name__}: {err}"
    return FAMILY_STATUS


def apply() -> dict[str, str | None]:
    """Apply every fix (idempotent) and register dsrl's families; returns the family status."""
    # MuJoCo picks its GL backend when first imported (dsrl imports it): EGL renders offscreen
    # on a CPU machine without a display; a user's own MUJOCO_GL wins.
    os.environ.setdefault("MUJOCO_GL", "egl")
    # pygame (MetaDrive's top-down renderer) greets on stdout when imported, and opens its
    # display through SDL: no greeting, and SDL's offscreen driver unless the user chose one.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    fix_safety_gymnasium_colors()
    fix_bullet_stream_redirect()
    fix_metadrive_register()
    fix_metadrive_waymo_protos()
    fix_metadrive_numpy_aliases()
    return import_dsrl_families()
