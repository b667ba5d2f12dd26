"""Video I/O: mp4 round trips, other formats and image folders, clear errors, interrupted writes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from lolbench.video_io import VideoReadError, VideoWriter, open_video, write_frame_strip
from lolbench.world import ProceduralWorld


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def _read_all(path: Path, chunk: int = 7) -> np.ndarray:
    return np.concatenate(list(open_video(path).chunks(chunk)))


@pytest.fixture(scope="module")
def world_frames() -> np.ndarray:
    return ProceduralWorld("city", seed=0).frames(0, 20)  # city: the sharpest colour edges of all scenes


def test_mp4_round_trip_full_colour(tmp_path, world_frames):
    path = tmp_path / "video.mp4"
    with VideoWriter(path, fps=16.0, pix_fmt="yuv444p") as writer:
        writer.write(world_frames[:8])
        writer.write(world_frames[8:])
    assert writer.frames_written == 20
    source = open_video(path)
    assert source.fps == 16.0 and source.frame_count == 20
    back = _read_all(path)
    assert back.shape == world_frames.shape and back.dtype == np.uint8
    assert _psnr(back, world_frames) > 30


def test_mp4_round_trip_upscaled_yuv420(tmp_path, world_frames):
    # The default yuv420p halves colour resolution; a nearest-neighbour x2 upscale (how runs are saved)
    # gives every 2x2 chroma sample one source pixel, so pooling the decoded video recovers the frames.
    path = tmp_path / "video.mp4"
    with VideoWriter(path, fps=16.0, scale=2) as writer:
        writer.write(world_frames)
    back = _read_all(path)
    assert back.shape == (20, 64, 64, 3)
    pooled = back.reshape(20, 32, 2, 32, 2, 3).mean((2, 4))  # [F, 32, 32, 3]
    assert _psnr(pooled, world_frames) > 30


def test_odd_sizes_are_padded_to_even(tmp_path, world_frames):
    path = tmp_path / "odd.mp4"
    odd = world_frames[:, :17, :23]
    with VideoWriter(path, fps=8.0, pix_fmt="yuv444p") as writer:
        writer.write(odd)
    back = _read_all(path)
    assert back.shape == (20, 18, 24, 3)
    assert _psnr(back[:, :17, :23], odd) > 30


def test_chunks_stream_in_order_with_a_short_last_chunk(tmp_path, world_frames):
    path = tmp_path / "video.mp4"
    with VideoWriter(path, fps=16.0, pix_fmt="yuv444p") as writer:
        writer.write(world_frames)
    chunks = list(open_video(path).chunks(6))
    assert [len(c) for c in chunks] == [6, 6, 6, 2]
    errors = [np.abs(c.astype(int) - world_frames[i * 6 : i * 6 + len(c)]).mean() for i, c in enumerate(chunks)]
    assert max(errors) < 3  # each chunk matches its own frames, not merely some frames


@pytest.mark.parametrize("interrupt", [RuntimeError("model crashed"), KeyboardInterrupt()])
def test_exception_inside_the_writer_keeps_a_playable_video(tmp_path, world_frames, interrupt):
    path = tmp_path / "video.mp4"
    with pytest.raises(type(interrupt)):
        with VideoWriter(path, fps=16.0) as writer:
            writer.write(world_frames[:4])
            writer.write(world_frames[4:10])
            assert not path.exists()  # the final name appears only on close
            raise interrupt
    assert path.exists() and not Path(f"{path}.partial").exists()
    assert len(_read_all(path)) == 10


def test_writer_without_frames_writes_nothing(tmp_path):
    path = tmp_path / "empty.mp4"
    with VideoWriter(path, fps=16.0):
        pass
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_input(tmp_path, world_frames):
    with pytest.raises(ValueError, match="pix_fmt.*yuv420p.*'rgb'"):
        VideoWriter(tmp_path / "x.mp4", fps=16.0, pix_fmt="rgb")
    with pytest.raises(ValueError, match="scale"):
        VideoWriter(tmp_path / "x.mp4", fps=16.0, scale=0)
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with VideoWriter(tmp_path / "x.mp4", fps=16.0) as writer:
        writer.write(world_frames[:3])
        with pytest.raises(ValueError, match="frame 3 .*size"):
            writer.write(world_frames[:2, :16])
        with pytest.raises(TypeError, match="uint8"):
            writer.write(world_frames.astype(np.float32))
    with pytest.raises(ValueError, match="closed"):
        writer.write(world_frames[:1])


def test_gif_is_read_with_its_frame_rate(tmp_path):
    # Few flat colours, so the GIF palette holds them exactly.
    colors = np.array([[255, 0, 0], [0, 200, 0], [0, 0, 255], [250, 250, 0], [0, 0, 0]], dtype=np.uint8)
    frames = np.zeros((5, 24, 32, 3), dtype=np.uint8)
    for i, color in enumerate(colors):
        frames[i, :, :16] = color
        frames[i, :, 16:] = colors[(i + 1) % 5]
    path = tmp_path / "anim.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    source = open_video(path)
    assert source.fps == pytest.approx(10.0)
    assert np.array_equal(_read_all(path, chunk=2), frames)


@pytest.mark.parametrize("suffix, codec, exact", [(".avi", "ffv1", True), (".webm", "libvpx-vp9", False)])
def test_other_containers_are_read(tmp_path, world_frames, suffix, codec, exact):
    path = tmp_path / f"video{suffix}"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(12))
        stream.width, stream.height = 32, 32
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv444p"
        for image in world_frames[:6]:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    back = _read_all(path)
    assert open_video(path).fps == pytest.approx(12.0)
    assert np.array_equal(back, world_frames[:6]) if exact else _psnr(back, world_frames[:6]) > 28


def test_image_folder_is_read_in_natural_order(tmp_path, world_frames):
    for i in range(12):  # frame_2 must come before frame_10
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), cv2.cvtColor(world_frames[i], cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_video(tmp_path)
    assert source.fps is None and source.frame_count == 12
    assert np.array_equal(_read_all(tmp_path, chunk=5), world_frames[:12])


def test_image_folder_errors_name_the_culprit(tmp_path, world_frames):
    with pytest.raises(VideoReadError, match="no images"):
        open_video(tmp_path)
    for i, size in enumerate([32, 32, 16]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), world_frames[i, :size, :size])
    with pytest.raises(VideoReadError, match="frame 2 has size"):
        _read_all(tmp_path)
    (tmp_path / "002.png").write_bytes(b"definitely not a png")
    with pytest.raises(VideoReadError, match="002.png"):
        _read_all(tmp_path)


def test_corrupt_missing_and_empty_files_raise_naming_the_path(tmp_path, world_frames):
    good = tmp_path / "good.mp4"
    with VideoWriter(good, fps=16.0) as writer:
        writer.write(world_frames)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.webm"
    empty.touch()
    for path in [truncated, garbage, empty, tmp_path / "missing.mp4"]:
        with pytest.raises(VideoReadError) as err:
            _read_all(path)
        assert str(path) in str(err.value)
    assert issubclass(VideoReadError, ValueError)


def test_frame_strip_is_an_upscaled_row_of_the_chosen_frames(tmp_path, world_frames):
    path = tmp_path / "report" / "strip.png"
    write_frame_strip(path, world_frames, indices=[0, 5, 19], scale=3, gap=2)
    strip = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert strip.shape == (96, 3 * 96 + 2 * 2, 3)
    for slot, index in enumerate([0, 5, 19]):
        tile = strip[:, slot * 98 : slot * 98 + 96]
        assert np.array_equal(tile[::3, ::3], world_frames[index])
        assert np.array_equal(tile[2::3, 1::3], world_frames[index])  # nearest-neighbour blocks
    assert np.all(strip[:, 96:98] == 255)
    assert [p.name for p in path.parent.iterdir()] == ["strip.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="png"):
        write_frame_strip(tmp_path / "strip.jpg", world_frames)
