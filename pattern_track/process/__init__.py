"""The process lifecycle: exit, fork and the detached drainer.

``lifecycle`` (the exit hook, fork hooks, the hand-off), ``launcher`` (start a detached
drainer when none runs), ``forksafe`` (the one lock ``fork()`` waits for).
"""
