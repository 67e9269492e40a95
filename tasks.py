"""Invoke tasks of rprockit: ``invoke --list``.  The tasks live in ``rprockit.cli``."""

from rprockit.cli import ns  # noqa: F401
