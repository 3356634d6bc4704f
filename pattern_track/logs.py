"""Module loggers that import ``logging`` on first use.

``logging`` (with ``traceback`` and ``string``) costs ~7 ms to import; a hook call or a
short script that never logs should not pay it. ``get(__name__)`` stands in for
``logging.getLogger(__name__)``: the first attribute access imports logging, attaches the
package's ``NullHandler`` (so nothing can reach stderr through ``logging.lastResort``
before the application configures logging) and hands over to the real logger.
"""

from __future__ import annotations

__all__ = ["get"]


class _Lazy:
    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger = None

    def __getattr__(self, attr: str):  # only for what the real logger has
        logger = self._logger
        if logger is None:
            logger = _real(self._name)
            if not isinstance(logger, _Silent):
                self._logger = logger  # a silent one is not kept: logging may come back (a fork)
        return getattr(logger, attr)


class _Silent:
    """What a lazy logger becomes when logging cannot be imported any more: a finalizer
    (``__del__``) calling ``track()`` during interpreter shutdown, where every import
    raises ``ImportError: sys.meta_path is None``. Logging nothing beats raising from an
    error handler (CPython would print "Exception ignored")."""

    def __getattr__(self, attr: str):
        return lambda *args, **kwargs: None


def _real(name: str):
    try:
        import logging

        attach_null_handler()
        return logging.getLogger(name)
    except Exception:  # ImportError at shutdown, or a logging module already torn down
        return _Silent()


def attach_null_handler() -> None:
    """Give the package logger its NullHandler (once). Called by the first lazy logger and
    by lifecycle's import, before the network parts (which use logging directly) can log:
    without it a warning would reach stderr through ``logging.lastResort``."""
    import logging

    package = logging.getLogger(__name__.rpartition(".")[0])
    if not any(isinstance(h, logging.NullHandler) for h in package.handlers):
        package.addHandler(logging.NullHandler())


def get(name: str) -> _Lazy:
    """A logger for ``name`` that costs nothing until something is logged."""
    return _Lazy(name)
