"""Kizy's test node pack. ``nodes.NODES`` is what the ``kizy.nodes`` entry point exposes."""
