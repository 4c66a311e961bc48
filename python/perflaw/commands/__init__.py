"""Sub-commands of the ``perflaw`` CLI, one module per feature (see cli.py)."""
