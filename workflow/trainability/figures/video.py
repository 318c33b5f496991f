"""MP4 zoom video of a zoom sequence: a smooth dive into the fractal boundary.

A zoom sequence is a list of square RGB keyframes, all R x R pixels; keyframe k
shows a window of width ``w0 / factor**k``, all windows concentric, so keyframe
k + 1 is the central ``1/factor`` of keyframe k at higher detail. The video
zooms from keyframe 0 to the last one at constant speed in log scale, as in the
paper's video: ``FPS`` = 30 frames a second, ``SECONDS_PER_DOUBLING`` = 1.5 s
(45 frames) per 2x zoom, then the last keyframe is held ``HOLD_SECONDS``.

An in-between frame at continuous depth d (keyframe units) shows the window of
width ``w0 / factor**d``. Each pixel takes its colour from the finest keyframe
that contains it: keyframe floor(d) fills the frame and keyframes floor(d) + 1
and + 2 cover ever smaller central squares (stacked keyframes; a deeper one's
outermost half pixel is left to the one below, not extrapolated). A deeper
keyframe fades in over the outer ``FEATHER`` of its width, so that it meets the
picture around it without a seam, as in the author's video (its colours must be
those of the same scale: one scale for the whole sequence,
``zoom_figures.sequence_reference``). Each keyframe is sampled bilinearly from a
mipmap level no coarser than its size on screen. The video side is the keyframe
resolution clamped to [256, 1024] and even.

Encoder: the FFmpeg binary (with libx264) that the pip package imageio-ffmpeg
ships, driven through a pipe of raw RGB frames; it needs no system FFmpeg and,
unlike PyAV, no compiled bindings, and running the binary ourselves gives us
its exit status and error text. x264 is deterministic by default (no
``--non-deterministic``), so the same keyframes give the same bytes with the
same binary. Colours are converted with and tagged as BT.709 so that players
do not guess the matrix from the frame size.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from matplotlib import image as mpl_image

from trainability.results import files

FPS = 30
SECONDS_PER_DOUBLING = 1.5
HOLD_SECONDS = 1.0
MIN_SIZE, MAX_SIZE = 256, 1024
CODEC = "libx264"  # H.264, in the FFmpeg build that imageio-ffmpeg ships
CRF = 18  # x264 quality: visually near-lossless; fractal detail needs the bits
FEATHER = 0.125  # a deeper keyframe fades in over this fraction of its width from its border
# BT.709 conversion, tagged in the stream (sRGB shares BT.709's primaries).
_COLOUR = "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,setparams=" + ":".join(
    f"{key}=bt709" for key in ("colorspace", "color_primaries", "color_trc")
)


def video_size(resolution: int) -> int:
    """Side of the video for keyframes of ``resolution``: clamped to [256, 1024], even."""
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"keyframe resolution must be a positive integer, got {resolution!r}")
    return min(max(int(resolution), MIN_SIZE), MAX_SIZE) // 2 * 2


def frames_per_step(factor: float) -> int:
    """Video frames per keyframe step of zoom ``factor`` (45 for 2)."""
    if not factor > 1:
        raise ValueError(f"zoom factor must be a number > 1, got {factor!r}")
    return max(1, round(FPS * SECONDS_PER_DOUBLING * math.log2(factor)))


def frame_depths(n_keyframes: int, factor: float) -> np.ndarray:
    """Depth (keyframe units, 0 .. n-1) of every video frame: linear in time, then held."""
    if int(n_keyframes) != n_keyframes or n_keyframes < 1:
        raise ValueError(f"number of keyframes must be a positive integer, got {n_keyframes!r}")
    steps = frames_per_step(factor)
    moving = np.arange(steps * (n_keyframes - 1)) / steps
    held = np.full(round(HOLD_SECONDS * FPS), float(n_keyframes - 1))
    return np.concatenate([moving, held])


def mipmap(image: np.ndarray) -> tuple[np.ndarray, ...]:
    """The image and its 2x2-averaged halvings (uint8), while the side stays even.

    Halving only even sides keeps every level's pixels exactly on the keyframe's
    window, so the levels line up with each other and with the other keyframes.
    """
    levels = [image]
    while levels[-1].shape[0] % 2 == 0 and levels[-1].shape[0] > 1:
        top = levels[-1].astype(np.float32)
        half = (top[0::2, 0::2] + top[1::2, 0::2] + top[0::2, 1::2] + top[1::2, 1::2]) / 4
        levels.append(np.round(half).astype(np.uint8))
    return tuple(levels)


def _bilinear(level: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Sample ``level`` at pixel coordinates u (rows) x u (columns), increasing; edges clamped.

    Separable (rows, then columns) with whole-row gathers and in-place float32
    steps: six times faster than four 2-D fancy-indexed corner gathers.
    """
    n = level.shape[0]
    u = np.clip(u, 0, n - 1)
    i0 = np.minimum(np.floor(u).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    w = (u - i0).astype(np.float32)
    lo = i0[0]
    sub = level[:, lo : i1[-1] + 1]  # only the columns that are sampled
    out = sub[i0].astype(np.float32)
    step = sub[i1].astype(np.float32)
    step -= out
    step *= w[:, None, None]
    out += step
    rows = out
    out = np.take(rows, i0 - lo, axis=1)
    step = np.take(rows, i1 - lo, axis=1)
    step -= out
    step *= w[None, :, None]
    out += step
    return out


def render_view(keyframes: Sequence, depth: float, factor: float, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 view at continuous ``depth``.

    ``keyframes[k]`` is keyframe k as an (R, R, 3) uint8 image or its ``mipmap``;
    only keyframes floor(depth) .. floor(depth) + 2 are read. Bilinear rather
    than nearest: keyframe floor(depth) is magnified up to ``factor`` times just
    before the next one takes over, and nearest sampling would show its pixels
    as blocks that crawl as the zoom moves. Mipmapping keeps the deeper, shrunk
    keyframes from aliasing (shimmering) in the centre.
    """
    if not 0 <= depth <= len(keyframes) - 1:
        raise ValueError(f"depth must lie in [0, {len(keyframes) - 1}], got {depth!r}")
    first = int(math.floor(depth))
    # Output pixel centres across the view, in view widths from the centre.
    t = (np.arange(size) + 0.5) / size - 0.5
    out = np.empty((size, size, 3), np.float32)
    for k in range(first, min(first + 3, len(keyframes))):
        levels = keyframes[k]
        levels = mipmap(levels) if isinstance(levels, np.ndarray) else levels
        scale = float(factor) ** (depth - k)  # keyframe k's width in view widths
        # Coarsest level with at least as many pixels as the keyframe covers on screen.
        shown = size * scale * (1 - 1e-9)
        level = next((lv for lv in reversed(levels) if lv.shape[0] >= shown), levels[0])
        n = level.shape[0]
        u = (t / scale + 0.5) * n - 0.5  # pixel coordinates in the level
        # A deeper keyframe's outer half pixel would need extrapolation; the
        # coarser keyframe below has real data there.
        inside = np.nonzero((u >= 0) & (u <= n - 1) if k > first else np.ones(size, bool))[0]
        if inside.size == 0:
            break
        a, b = inside[0], inside[-1] + 1
        sample = _bilinear(level, u[a:b])
        if k == first or FEATHER <= 0:
            out[a:b, a:b] = sample
            continue
        # Weight 0 at the keyframe's border, 1 from FEATHER of its width inwards.
        border = np.minimum(u[a:b], n - 1 - u[a:b]) / (FEATHER * (n - 1))
        weight = np.clip(border, 0.0, 1.0).astype(np.float32)
        weight = np.minimum.outer(weight, weight)[:, :, None]
        out[a:b, a:b] += weight * (sample - out[a:b, a:b])
    return np.rint(out, out=out).astype(np.uint8)


def read_keyframe(path: str | Path) -> np.ndarray:
    """A PNG keyframe as an (R, R, 3) uint8 array: floats scaled, alpha dropped."""
    image = mpl_image.imread(path)
    if image.dtype.kind == "f":
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] != image.shape[1]:
        raise ValueError(f"keyframe {path} must be a square RGB(A) image, got shape {image.shape}")
    return np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)


Keyframe = str | Path | Callable[[], np.ndarray]


class _Keyframes(Sequence):
    """Keyframe mipmaps made on first use (from a PNG path, or a function returning the RGB
    image); those shallower than the current depth are dropped."""

    def __init__(self, sources: Sequence[Keyframe]):
        self.sources = list(sources)
        self.cache = {0: mipmap(self._image(0))}
        self.resolution = self.cache[0][0].shape[0]

    def _name(self, k: int) -> str:
        source = self.sources[k]
        return getattr(source, "__name__", "an image") if callable(source) else str(source)

    def _image(self, k: int) -> np.ndarray:
        source = self.sources[k]
        return source() if callable(source) else read_keyframe(source)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, k):
        if k not in self.cache:
            for old in [j for j in self.cache if j < k - 2]:
                del self.cache[old]
            image = self._image(k)
            if image.shape[0] != self.resolution:
                raise ValueError(
                    f"keyframe {k} ({self._name(k)}) is {image.shape[0]}x{image.shape[1]} pixels; the "
                    f"sequence's keyframes are {self.resolution}x{self.resolution} ({self._name(0)})"
                )
            self.cache[k] = mipmap(image)
        return self.cache[k]


def _ffmpeg_command(size: int, output: Path) -> list[str]:
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}", "-r", str(FPS), "-i", "-"]
    h264 = ["-an", "-c:v", CODEC, "-preset", "medium", "-crf", str(CRF), "-vf", _COLOUR]
    mp4 = ["-movflags", "+faststart", "-f", "mp4", str(output)]
    return [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-nostdin", "-v", "error", *raw, *h264, *mp4]


def write_zoom_video(keyframe_paths: Sequence[Keyframe], factor: float, output_path: str | Path) -> dict:
    """Encode the zoom through ``keyframe_paths`` (in zoom order: PNG paths, or functions
    that return (R, R, 3) uint8 images) as an H.264 MP4.

    Written atomically: on any error no file is left at ``output_path``.
    Returns {"frames", "size", "seconds", "fps"}.
    """
    if len(keyframe_paths) == 0:
        raise ValueError("a zoom video needs at least one keyframe, got none")
    depths = frame_depths(len(keyframe_paths), factor)
    keyframes = _Keyframes(keyframe_paths)
    size = video_size(keyframes.resolution)
    with files.atomic_path(output_path) as tmp, tempfile.TemporaryFile() as errors:
        encoder = subprocess.Popen(_ffmpeg_command(size, tmp), stdin=subprocess.PIPE, stderr=errors)
        try:
            frame, shown = None, None
            for depth in depths:
                if depth != shown:  # held frames are rendered once
                    frame, shown = render_view(keyframes, depth, factor, size), depth
                encoder.stdin.write(frame.data)
        except BrokenPipeError:
            pass  # FFmpeg quit early: its exit status and message are reported below
        except BaseException:
            encoder.kill()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                encoder.stdin.close()  # end of input: FFmpeg finishes the file
            status = encoder.wait()
        if status != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"FFmpeg failed (exit status {status}) writing {output_path}: {message}")
    return {"frames": len(depths), "size": size, "seconds": len(depths) / FPS, "fps": FPS}
