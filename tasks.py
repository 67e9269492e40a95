"""Invoke tasks of rprockit: ``invoke --list``.  The tasks live in ``rprockit.cli``."""

from rprockit.cli import adopt_invoke_binary, ns  # noqa: F401

# bad options and values exit 2 with the culprit named, as with the rprockit script
adopt_invoke_binary()
