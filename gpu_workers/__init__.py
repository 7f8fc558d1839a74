"""Kizy's compute core: node SDK, registry, graph validation, executor, built-in nodes, backends.

This package imports nothing from Django: the same code runs in a local Celery worker, on a GPU
machine and inside a Modal container. The Django side talks to it through a graph (plain JSON), a
``NodeContext`` (artifacts, models, progress, cancellation) and a JSON-able result.
"""
