"""Video frames between nodes, and the final MP4.

Generation nodes store their frames losslessly as a safetensors file holding one uint8 tensor
(frames, height, width, 3): exact pixels for any later node, no codec generation loss, and the
same "safetensors only" rule as weights (an APNG would merge identical consecutive frames and lose
the frame count). ``save_video`` encodes the playable H.264 MP4 once, at the end, with
imageio-ffmpeg's bundled ffmpeg; metadata is stripped and the bit-exact flags make the same frames
give the same file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from gpu_workers.models.lazy import untyped
from gpu_workers.sdk import NodeContext, NodeError, VideoRef, sha256_hex

FRAMES_SUFFIX = "safetensors"


def save_frames(ctx: NodeContext, frames: Sequence[Image.Image], fps: float) -> VideoRef:
    from safetensors.numpy import save

    array = np.stack([np.asarray(frame.convert("RGB"), dtype=np.uint8) for frame in frames])
    data = save({"frames": array}, metadata={"fps": repr(float(fps))})
    key, digest = ctx.save_bytes(data, FRAMES_SUFFIX, "application/octet-stream")
    return VideoRef(
        key=key, sha256=digest, frames=len(frames), fps=fps, width=array.shape[2], height=array.shape[1]
    )


def load_frames(ctx: NodeContext, ref: VideoRef) -> list[Image.Image]:
    """Frames of a video made by a generation node (safetensors) or an MP4 (decoded with ffmpeg)."""
    data = ctx.load_bytes(ref.key)
    if sha256_hex(data) != ref.sha256:
        raise NodeError(ctx.node_id, f"stored video {ref.key!r} does not match its SHA-256")
    if ref.key.endswith("." + FRAMES_SUFFIX):
        from safetensors.numpy import load

        return [Image.fromarray(frame, "RGB") for frame in load(data)["frames"]]
    imageio_ffmpeg = untyped("imageio_ffmpeg")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "input.mp4")
        with open(path, "wb") as handle:
            handle.write(data)
        reader = imageio_ffmpeg.read_frames(path)
        meta = next(reader)
        width, height = meta["size"]
        return [
            Image.fromarray(np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3), "RGB")
            for raw in reader
        ]


def encode_mp4(frames: Sequence[Image.Image], fps: float, *, crf: int = 18) -> bytes:
    """H.264/yuv420p MP4 (plays in every browser). Odd sizes are padded by one pixel, as yuv420p needs."""
    imageio_ffmpeg = untyped("imageio_ffmpeg")

    width, height = frames[0].size
    even = (width + width % 2, height + height % 2)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "output.mp4")
        writer = imageio_ffmpeg.write_frames(
            path,
            even,
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=[
                "-crf",
                str(crf),
                "-map_metadata",
                "-1",
                "-fflags",
                "+bitexact",
                "-flags:v",
                "+bitexact",
                "-movflags",
                "+faststart",
            ],
        )
        writer.send(None)
        for frame in frames:
            rgb = frame.convert("RGB")
            if rgb.size != even:
                padded = Image.new("RGB", even)
                padded.paste(rgb, (0, 0))
                rgb = padded
            writer.send(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)))
        writer.close()
        with open(path, "rb") as handle:
            return handle.read()
