"""Model weights on a worker: references and the store, safety checks, format detection, the warm
pipeline cache, the tiny-model generator and the Real-ESRGAN weight converter.

Importing this package is cheap (no torch); the heavy modules import torch/diffusers lazily.
"""
