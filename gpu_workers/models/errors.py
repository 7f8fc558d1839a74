"""Errors raised while resolving, checking and loading model files.

They are plain exceptions (not the SDK's ``NodeError``) because the catalog on the Django side reuses
the store and the checks; node code turns them into ``NodeError`` with the same message, which is
written for the person who picked the model.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class: something is wrong with a model reference or file."""


class ModelRefError(ModelError):
    """The reference string is malformed or uses an unknown scheme."""


class ModelNotInstalledError(ModelError):
    """The reference is well-formed but the weights are not available on this worker."""


class ModelStoreUnreachable(ModelNotInstalledError):
    """The weights' source (the Hugging Face Hub or a mirror) could not be reached: a connection error, a
    timeout, a 5xx or 429 answer. Unlike "not found" or "no access", worth another attempt."""


class UnsafeModelFileError(ModelError):
    """The file is refused before loading: a pickle format or a malformed safetensors file."""


class UnsupportedModelError(ModelError):
    """The model loaded but its family or layout is not one this node can run."""
