"""Zoom videos: timing, in-between frames, and a real H.264 encode decoded again.

Expected values come from the specification (30 fps, 45 frames per 2x zoom,
1 s hold, concentric windows of width w0 / factor**k), not from the code: the
geometry tests draw keyframes from a pattern defined on hyperparameter space
and compare the views with that pattern evaluated directly.
"""

import imageio_ffmpeg
import numpy as np
import pytest
from matplotlib import image as mpl_image

from trainability.figures import video, zoom

R = 64  # keyframe resolution; videos of such keyframes are upscaled to 256
HOLD = 30  # 1 s at 30 fps
COLOURS = np.array([[220, 40, 40], [40, 200, 60], [40, 70, 220], [240, 220, 30]], np.uint8)


def view_positions(depth, factor, size):
    """Pixel centres of the view at ``depth`` in units of keyframe 0's width (w0 = 1)."""
    return ((np.arange(size) + 0.5) / size - 0.5) / factor**depth


def pattern(x):
    """A smooth RGB picture on hyperparameter space (x = y = 0 at the zoom centre)."""
    xx, yy = np.meshgrid(x, x, indexing="xy")
    rgb = [np.sin(8 * np.pi * xx + 0.3), np.cos(8 * np.pi * yy + 0.5), np.sin(6 * np.pi * (xx + yy) + 1)]
    return np.stack([127.5 + 100 * c for c in rgb], axis=-1)


def smooth_keyframes(n, factor):
    return [np.round(pattern(view_positions(k, factor, R))).astype(np.uint8) for k in range(n)]


def save(images, folder):
    paths = []
    for k, image in enumerate(images):
        path = folder / f"frame_{k:03d}.png"
        mpl_image.imsave(path, image)
        paths.append(path)
    return paths


def decode(path):
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return meta, np.array(frames)


def mean_abs(a, b):
    return np.abs(a.astype(float) - b.astype(float)).mean()


def test_frame_depths_follow_the_papers_timing():
    depths = video.frame_depths(4, 2.0)
    assert len(depths) == 3 * 45 + HOLD
    assert depths[0] == 0 and depths[-1] == 3
    assert np.all(np.diff(depths) >= 0)
    np.testing.assert_allclose(np.diff(depths[: 3 * 45 + 1]), 1 / 45)
    assert np.all(depths[-HOLD:] == 3) and depths[-HOLD - 1] < 3
    assert len(video.frame_depths(4, 4.0)) - HOLD == 2 * (len(depths) - HOLD)
    np.testing.assert_array_equal(video.frame_depths(1, 2.0), np.zeros(HOLD))


@pytest.mark.parametrize("bad", [1.0, 0.5, -2.0])
def test_zoom_factor_must_exceed_one(bad):
    with pytest.raises(ValueError, match="factor"):
        video.frame_depths(3, bad)


def test_video_size_is_clamped_and_even():
    assert [video.video_size(r) for r in (64, 256, 301, 1023, 4096)] == [256, 256, 300, 1022, 1024]
    with pytest.raises(ValueError, match="resolution"):
        video.video_size(0)


def block_mean(image, b):
    n = image.shape[0] // b
    return image.astype(float).reshape(n, b, n, b, 3).mean(axis=(1, 3))


def test_render_view_at_integer_depth_is_the_keyframes_stacked():
    rng = np.random.default_rng(1)
    keyframes = list(rng.integers(0, 256, (4, R, R, 3), dtype=np.uint8))
    np.testing.assert_array_equal(video.render_view(keyframes[:1], 0, 2.0, R), keyframes[0])
    # At depth 1 keyframe 2 covers the central half and keyframe 3 the central quarter,
    # shown at 32 and 16 pixels: 2x2 and 4x4 block means of them, each fading in over the
    # outer eighth of its width (4 and 2 pixels).
    expected = keyframes[1].astype(float)
    expected[16:48, 16:48] = block_mean(keyframes[2], 2)
    expected[24:40, 24:40] = block_mean(keyframes[3], 4)
    view = video.render_view(keyframes, 1, 2.0, R).astype(float)
    for lo, hi in ((0, 16), (48, 64)):  # keyframe 1 alone
        assert np.abs(view - expected)[lo:hi].max() <= 1 and np.abs(view - expected)[:, lo:hi].max() <= 1
    assert np.abs(view - expected)[20:44, 20:44][:, :4].max() <= 1  # keyframe 2, past its fade
    assert np.abs(view - expected)[26:38, 26:38].max() <= 1  # keyframe 3, past its fade
    # At its border a deeper keyframe has hardly any weight: the one below shows.
    outer = keyframes[1].astype(float)
    assert (
        np.abs(view[16, 20:44] - outer[16, 20:44]).mean()
        < np.abs(view[16, 20:44] - expected[16, 20:44]).mean()
    )


def seam_step(view, inner_lo, inner_hi):
    """(mean colour step across the border of the central square [inner_lo, inner_hi), mean step
    between neighbouring pixels elsewhere in the view)."""
    v = view.astype(float)
    steps_x = np.abs(np.diff(v, axis=1)).sum(axis=2)  # step between columns j and j + 1
    rows = slice(inner_lo + 2, inner_hi - 2)
    across = np.concatenate([steps_x[rows, inner_lo - 1], steps_x[rows, inner_hi - 1]])
    elsewhere = np.delete(steps_x, [inner_lo - 1, inner_hi - 1], axis=1)
    return across.mean(), elsewhere.mean()


def test_keyframes_of_one_sequence_meet_without_a_seam(monkeypatch):
    """A zoom into a smooth measure (its values a smooth function of position): each keyframe
    ranked on its own fills the whole colour range, so the deeper one shows as a square of
    other colours; ranked on the sequence's values and faded in, it does not."""
    size = 256
    positions = [view_positions(k, 2.0, R) for k in range(3)]
    frames = [np.hypot.outer(x, x) - 0.05 for x in positions]  # a disc about the zoom centre
    depth = 0.5
    # The view's columns that keyframe 1 covers (its pixel centres, as render_view places them).
    u = (((np.arange(size) + 0.5) / size - 0.5) * 2 ** (1 - depth) + 0.5) * R - 0.5
    covered = np.flatnonzero((u >= 0) & (u <= R - 1))
    lo, hi = covered[0], covered[-1] + 1

    with monkeypatch.context() as old:  # as the video was: its own scale, pasted in
        old.setattr(video, "FEATHER", 0.0)
        alone = [zoom.frame_rgb(f) for f in frames]
        across, elsewhere = seam_step(video.render_view(alone, depth, 2.0, size), lo, hi)
    assert across > 10 * elsewhere, "the old colouring shows a seam: the measure of the test works"

    reference = zoom.sequence_reference(frames)
    shared = [zoom.frame_rgb(f, reference) for f in frames]
    across, elsewhere = seam_step(video.render_view(shared, depth, 2.0, size), lo, hi)
    assert across < 2 * elsewhere, (across, elsewhere)


@pytest.mark.parametrize("depth", [0, 0.5, 1, 1.3, 2.7, 3])
def test_render_view_matches_the_zoomed_pattern(depth):
    keyframes = smooth_keyframes(4, 2.0)
    view = video.render_view(keyframes, depth, 2.0, 256)
    assert view.shape == (256, 256, 3) and view.dtype == np.uint8
    error = np.abs(view - pattern(view_positions(depth, 2.0, 256)))
    assert error.mean() < 1.5
    assert error[3:-3, 3:-3].max() < 6  # the outermost pixels are extrapolated (clamped)
    if depth > 0:  # the comparison can fail: the unzoomed picture is far off
        assert np.abs(view - pattern(view_positions(0, 2.0, 256))).mean() > 20


def test_read_keyframe_drops_alpha_and_keeps_uint8_values(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (R, R, 4), dtype=np.uint8)
    mpl_image.imsave(tmp_path / "k.png", rgba)
    np.testing.assert_array_equal(video.read_keyframe(tmp_path / "k.png"), rgba[:, :, :3])


def test_video_of_smooth_zoom_starts_and_ends_on_the_keyframes(tmp_path):
    paths = save(smooth_keyframes(4, 2.0), tmp_path)
    info = video.write_zoom_video(paths, 2.0, tmp_path / "zoom.mp4")
    meta, frames = decode(tmp_path / "zoom.mp4")
    n = len(video.frame_depths(4, 2.0))
    assert info == {"frames": n, "size": 256, "seconds": n / 30, "fps": 30}
    assert frames.shape == (n, 256, 256, 3) and meta["fps"] == 30
    first, last = pattern(view_positions(0, 2.0, 256)), pattern(view_positions(3, 2.0, 256))
    assert mean_abs(frames[0], first) < 6  # measured 3.5: H.264 at CRF 18 and 4:2:0 chroma
    assert mean_abs(frames[-1], last) < 6
    assert mean_abs(frames[-1], first) > 20
    # Same keyframes, same bytes.
    video.write_zoom_video(paths, 2.0, tmp_path / "again.mp4")
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "zoom.mp4").read_bytes()


def test_video_pixels_come_from_the_deepest_covering_keyframe(tmp_path):
    # Keyframe k is solid colour k, so a pixel's colour tells which keyframe drew it.
    paths = save([np.broadcast_to(c, (R, R, 3)) for c in COLOURS], tmp_path)
    video.write_zoom_video(paths, 2.0, tmp_path / "zoom.mp4")
    _, frames = decode(tmp_path / "zoom.mp4")
    depth = 68 / 45  # frame 68, between keyframes 1 and 2
    half = 0.5 / 2**depth  # half the view's width, in keyframe-0 widths
    mid = frames[68]
    # Keyframe k covers |x| < 0.5 / 2**k: sample the centre and along the middle row.
    for x, k in [(0.0, 3), (0.03, 3), (0.75 * 0.5 / 4, 2), (0.9 * half, 1)]:
        column = int(128 + x / half * 128)
        assert mean_abs(mid[126:130, column - 2 : column + 2], COLOURS[k]) < 12, (x, k)
    assert mean_abs(frames[0][:8, :8], COLOURS[0]) < 12
    assert mean_abs(frames[-1][124:132, 124:132], COLOURS[3]) < 12
    assert mean_abs(frames[-1][:8, :8], COLOURS[3]) < 12


def test_failed_encode_leaves_no_file(tmp_path):
    images = smooth_keyframes(3, 2.0)
    images[2] = images[2][:32, :32]
    paths = save(images, tmp_path)
    output = tmp_path / "zoom.mp4"
    with pytest.raises(ValueError, match=r"frame_002\.png.*32x32.*64x64"):
        video.write_zoom_video(paths, 2.0, output)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]


def test_no_keyframes_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="keyframe"):
        video.write_zoom_video([], 2.0, tmp_path / "zoom.mp4")
    assert not (tmp_path / "zoom.mp4").exists()


def test_encoder_failure_is_reported_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "CODEC", "no-such-encoder")
    paths = save(smooth_keyframes(2, 2.0), tmp_path)
    with pytest.raises(RuntimeError, match="FFmpeg failed.*no-such-encoder"):
        video.write_zoom_video(paths, 2.0, tmp_path / "zoom.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]
