"""The old name of ``store/forksafe.py`` (the one lock ``fork()`` waits for).

Every attribute is read from that module at each access (PEP 562), so ``forksafe.guard``
here is always the lock in force, also after a fork replaced it in the child. Kept for
delivery/core.py, which imports this path; the rest of the package imports the new one.
"""

from __future__ import annotations

from ..store import forksafe as _forksafe

__all__ = ["FORK_WAIT_S", "guard"]


def __getattr__(name: str) -> object:
    return getattr(_forksafe, name)
