"""The stand-in for a package that differentiates, in a graded kernel.

The sandbox (:mod:`grader.sandbox`) mounts this folder, read-only, over every package of
:data:`grader.settings.AUTODIFF_PACKAGES` that is installed (``autograd``, ``jax``, ``torch``,
``sympy``, ...), so the real package is absent from the kernel's file system. Importing it
still succeeds (``import autograd``, ``import autograd.numpy as anp``, ``from autograd import
grad``): a notebook's set-up cell runs as it does outside grading. Every use raises
:class:`AutodiffUnavailable`: calling any of its functions, reading an attribute of one,
or importing a name of a submodule that is then called.

This module knows its own name (``__name__`` is the package it stands in for); it imports
nothing of the grader, so it works however the kernel's ``sys.path`` is arranged.
"""
import importlib.abc
import importlib.machinery
import sys
import types

__all__ = ["AutodiffUnavailable"]

MESSAGE = ("automatic differentiation is not available in graded runs: {name} is a stand-in "
           "here (derive it and write it with numpy)")


class AutodiffUnavailable(RuntimeError):
    """A package that differentiates was used in a graded kernel."""


class _Unavailable:
    """Any object of the stand-in package: calling it raises, and so does any attribute."""

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        raise AutodiffUnavailable(MESSAGE.format(name=self._name))

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}")

    def __repr__(self):
        return f"<{self._name}: not available in graded runs>"


class _StandinModule(types.ModuleType):
    """A module of the stand-in package: every name it is asked for is unavailable."""

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self.__name__}.{attr}")


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports every submodule of a stand-in package as another stand-in module."""

    def __init__(self, top):
        self.top = top

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.top + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandinModule(spec.name, MESSAGE.format(name=spec.name))
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def _install():
    top = __name__.split(".")[0]
    if top == "grader":             # imported as grader.standin (the grader's own copy)
        return
    this = sys.modules[__name__]
    this.__class__ = _StandinModule
    this.__doc__ = MESSAGE.format(name=top)
    this.__path__ = []
    if not any(isinstance(f, _Finder) and f.top == top for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(top))


_install()
