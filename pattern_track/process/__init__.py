"""The process lifecycle: exit, fork and the detached drainer.

``lifecycle`` (the exit hook, fork hooks, the hand-off), ``launcher`` (start a detached
drainer when none runs), ``ending`` (close, exit and hand-off of one tracker), ``detached``
(the detached drainer's process); ``forksafe`` is the old name of store/forksafe.py.
"""
