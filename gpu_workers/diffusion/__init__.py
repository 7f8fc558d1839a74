"""Helpers shared by the diffusion nodes: schedulers, step callbacks with previews, image prep.

Kept out of ``gpu_workers.nodes`` so node modules stay small and declarative; nothing here is a node.
Heavy imports (torch, diffusers, cv2) happen inside functions so importing a node module stays cheap.
"""
