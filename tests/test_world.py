"""The procedural world: determinism, random access, no repeats, a camera pan the pixels obey, sprites."""

from __future__ import annotations

import dataclasses
import hashlib

import cv2
import numpy as np
import pytest
from scipy.spatial import cKDTree

from lolbench.generator import VideoGenerator
from lolbench.world import SCENES, Octave, ProceduralWorld, Sprite, WorldVideo, sample_clips
from lolbench.world.hashing import derive_key, hash_u64, hash_uniform
from lolbench.world.sprites import sprite_states
from lolbench.world.texture import palette_lut


def test_unknown_scene_names_the_known_ones():
    with pytest.raises(ValueError) as err:
        ProceduralWorld("jungle", seed=0)
    assert "'jungle'" in str(err.value)
    assert all(name in str(err.value) for name in SCENES)


def test_bad_styles_are_rejected_naming_the_value():
    with pytest.raises(ValueError, match="'wavy'"):
        Octave(8.0, 1.0, "wavy")
    with pytest.raises(ValueError, match="'star'"):
        Sprite("star", (0, 0, 0), 2.0)
    with pytest.raises(ValueError, match="300"):
        dataclasses.replace(SCENES["lava"], palette=((0, 0, 0), (300, 0, 0)))


def test_hash_is_splitmix64_and_uniform():
    # Known answer: the first output of the reference splitmix64 generator seeded with 0.
    assert int(hash_u64(0, 0)[()]) == 0xE220A8397B1DCDAF
    # Golden values: changing the hash silently changes every world, and with it the training
    # distribution of the shipped checkpoint.
    assert derive_key("ground", "meadow", 0) == 0x0F353269FFD20C1F
    assert hash_u64(derive_key(7), np.array([0, -1, 2**40])).tolist() == [
        0xB8B4C2977EABCE45, 0xA9A96B699DC41760, 0x360F2454E2A4E1AB
    ]
    u = hash_uniform(derive_key(3), np.arange(-50_000, 50_000))
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 9_500  # flat: 10,000 expected per bin


def test_palette_lut_spans_the_palette():
    palette = ((10, 20, 30), (200, 100, 0), (0, 250, 120))
    lut = palette_lut(palette, blend=0.5)
    assert np.allclose(lut[0], palette[0], atol=0.5) and np.allclose(lut[-1], palette[-1], atol=0.5)
    assert np.allclose(lut[len(lut) // 2], palette[1], atol=0.5)  # the middle colour holds a flat band


def test_same_seed_same_frames_other_seed_other_frames():
    a = ProceduralWorld("meadow", seed=3).frames(100, 8)
    assert a.dtype == np.uint8 and a.shape == (8, 32, 32, 3)
    assert np.array_equal(a, ProceduralWorld("meadow", seed=3).frames(100, 8))
    b = ProceduralWorld("meadow", seed=4).frames(100, 8)
    assert np.abs(a.astype(int) - b).mean() > 20


def test_scenes_differ_in_colour_statistics():
    means = {name: ProceduralWorld(name, seed=0).frames(0, 200).reshape(-1, 3).mean(0) for name in SCENES}
    names = list(means)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert np.linalg.norm(means[first] - means[second]) > 30, (first, second)


@pytest.mark.parametrize("size", [32, 128])
def test_random_access_equals_sequential_rendering(size):
    world = ProceduralWorld("ocean", seed=1, size=size)
    start = 12_345
    together = world.frames(start, 150)  # at size 128 this spans two internal render blocks
    one_by_one = np.stack([world.frames(start + i, 1)[0] for i in range(0, 150, 7)])
    assert np.array_equal(together[::7], one_by_one)
    assert np.array_equal(together[100:], world.frames(start + 100, 50))


def _near_duplicate_pairs(frames: np.ndarray, tol: float) -> np.ndarray:
    """Pairs (i, j) whose 8x8 mean-pooled descriptors differ by at most ``tol`` grey levels RMS.

    A KD-tree over 2x2 pooled descriptors finds candidates; pooling only shrinks RMS differences, so no
    true pair is missed, and candidates are then checked on the 8x8 descriptors.
    """
    n, size = len(frames), frames.shape[1]
    fine = frames.reshape(n, 8, size // 8, 8, size // 8, 3).mean((2, 4), dtype=np.float32)  # [N, 8, 8, 3]
    coarse = fine.reshape(n, 2, 4, 2, 4, 3).mean((2, 4)).reshape(n, -1)  # [N, 12]
    fine = fine.reshape(n, -1)  # [N, 192]
    cand = cKDTree(coarse).query_pairs(r=tol * np.sqrt(coarse.shape[1]), output_type="ndarray")
    rms = np.sqrt(((fine[cand[:, 0]] - fine[cand[:, 1]]) ** 2).mean(1))
    return cand[rms <= tol]


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_world_never_repeats_over_10000_frames(scene):
    frames = ProceduralWorld(scene, seed=0).frames(0, 10_000)
    digests = {hashlib.blake2b(f.tobytes(), digest_size=16).digest() for f in frames}
    assert len(digests) == len(frames)
    # Near-duplicates: frames a full view width (32 frames of pan) or more apart that look alike.
    # 8 grey levels RMS is below the change of one frame of pan in every scene (5-17 levels).
    far_apart = 32
    pairs = _near_duplicate_pairs(frames, tol=8.0)
    assert not np.any(np.abs(pairs[:, 0] - pairs[:, 1]) >= far_apart)
    # The detector does find a planted repeat: frame 0 plus mild noise, placed at the end.
    noisy = np.clip(frames[0] + np.random.default_rng(0).integers(-3, 4, frames[0].shape), 0, 255)
    planted = np.concatenate([frames[:-1], noisy[None].astype(np.uint8)])
    found = _near_duplicate_pairs(planted, tol=8.0)
    assert [0, len(frames) - 1] in found[np.abs(found[:, 0] - found[:, 1]) >= far_apart].tolist()


@pytest.mark.parametrize("size", [32, 64])
def test_camera_moves_at_the_documented_velocity(size):
    world = ProceduralWorld("desert", seed=0, size=size)
    path = world.camera(np.arange(50))
    assert path.shape == (50, 2) and world.camera(7).shape == (2,)
    step = np.asarray(world.style.camera_velocity) * size / 32
    assert np.allclose(np.diff(path, axis=0), step)


def _overlap(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """The regions of a and b that show the same place if b's content is a's moved by (dx, dy)."""
    h, w = a.shape[:2]
    a_part = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    b_part = b[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
    return a_part, b_part


def _best_integer_shift(a: np.ndarray, b: np.ndarray, reach: int = 3) -> tuple[int, int]:
    """Content motion (dx, dy) from a to b: the integer shift under which most overlapping pixels are
    exactly equal (a pure pan of the ground keeps pixels exact; sprites move on their own)."""
    shifts = [(dx, dy) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    equal = [np.all(np.equal(*_overlap(a, b, dx, dy)), axis=-1).mean() for dx, dy in shifts]
    return shifts[int(np.argmax(equal))]


@pytest.mark.parametrize("scene", sorted(SCENES))
@pytest.mark.parametrize("size", [32, 64])
def test_image_content_follows_the_camera(scene, size):
    world = ProceduralWorld(scene, seed=2, size=size)
    frames = world.frames(500, 12)
    step = world.camera(1) - world.camera(0)
    dx, dy = np.rint(step).astype(int)
    assert np.allclose(step, (dx, dy))  # the built-in scenes pan by whole pixels
    for a, b in zip(frames[:-1], frames[1:]):
        assert _best_integer_shift(a, b) == (-dx, -dy)  # content moves against the camera
        a_part, b_part = _overlap(a, b, -dx, -dy)
        assert np.all(a_part == b_part, axis=-1).mean() > 0.75  # exactly equal, except under sprites


@pytest.mark.parametrize("scene", ["meadow", "ocean", "lava"])
def test_subpixel_pan_is_recovered_by_image_registration(scene):
    # A fractional pan, sprites off so only the camera moves. OpenCV's ECC registration recovers it;
    # phaseCorrelate is not used because it whitens the spectrum, and smooth 32 px ground has almost no
    # energy at the high frequencies it then weighs equally.
    velocity = np.array([0.37, -0.21])
    style = dataclasses.replace(SCENES[scene], camera_velocity=tuple(velocity), sprite_count=0)
    gray = ProceduralWorld(style, seed=0).frames(40, 13).astype(np.float32).mean(-1)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    shifts = []
    for a, b in zip(gray[:-1], gray[1:]):
        _, warp = cv2.findTransformECC(a, b, np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION, criteria,
                                       None, 1)
        shifts.append(warp[:, 2])  # b(x) = a(x + shift): the shift equals the camera step
    error = np.abs(np.array(shifts) + velocity)  # ECC reports the content motion, -velocity
    assert error.max() < 0.2
    assert np.median(error) < 0.1


@pytest.mark.parametrize("velocity", [(1.0, 0.0), (0.37, -0.21)])  # built-in pan, and sub-pixel camera positions
def test_larger_sizes_show_the_same_world(velocity):
    style = dataclasses.replace(SCENES["lava"], camera_velocity=velocity)
    small = ProceduralWorld(style, seed=5, size=32).frames(200, 6).astype(np.float64)
    big = ProceduralWorld(style, seed=5, size=64).frames(200, 6).astype(np.float64)
    pooled = big.reshape(6, 32, 2, 32, 2, 3).mean((2, 4))  # [F, 32, 32, 3]
    assert np.abs(pooled - small).mean() < 2.0  # palette and sprite edges are not linear, so not exact
    other = ProceduralWorld(style, seed=6, size=32).frames(200, 6)
    assert np.abs(other - small).mean() > 20


def test_sprites_move_in_straight_lines_at_their_own_speed():
    style = SCENES["meadow"]
    t = np.arange(3_000)
    states = sprite_states(derive_key("sprites", "meadow", 0), style, t)
    both = states.visible[1:] & states.visible[:-1]  # [F-1, N] visible in consecutive frames
    step = np.stack([np.diff(states.x, axis=0), np.diff(states.y, axis=0)], axis=-1)[both]
    velocity = states.velocity[1:][both]
    assert np.allclose(step, velocity)
    speed = np.linalg.norm(velocity, axis=-1)
    lo, hi = style.sprite_speed
    assert speed.min() >= lo - 1e-9 and speed.max() <= hi + 1e-9 and speed.std() > 0.05
    angles = np.arctan2(velocity[:, 1], velocity[:, 0])
    assert np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0].min() > 0  # all directions occur
    in_view = states.visible.sum(axis=1)
    assert in_view.max() <= style.sprite_count and (in_view > 0).mean() > 0.6


def test_sprites_are_drawn_in_their_colour_where_the_states_say():
    world = ProceduralWorld("city", seed=0)
    t = np.arange(300)
    frames = world.frames(0, 300)
    states = sprite_states(derive_key("sprites", "city", 0), world.style, t)
    checked = 0
    for f, slot in zip(*np.nonzero(states.visible)):
        x, y = states.x[f, slot], states.y[f, slot]
        later = states.visible[f, slot + 1 :]  # later slots are drawn on top and may cover this one
        if not (1 <= x < 31 and 1 <= y < 31) or later.any():
            continue
        assert np.allclose(frames[f, int(y), int(x)], states.color[f, slot], atol=1)
        checked += 1
    assert checked > 100


def test_sample_clips_are_contiguous_pans_and_reproducible():
    scenes = ["meadow", "city"]
    clips, ids = sample_clips(scenes, batch=4, frames=5, size=32, rng=np.random.default_rng(0))
    assert clips.shape == (4, 5, 32, 32, 3) and clips.dtype == np.uint8
    assert ids.dtype == np.int64 and set(ids.tolist()) <= {0, 1}
    again, ids_again = sample_clips(scenes, batch=4, frames=5, size=32, rng=np.random.default_rng(0))
    assert np.array_equal(clips, again) and np.array_equal(ids, ids_again)
    assert not np.array_equal(clips[0], clips[1])
    for clip in clips:
        assert _best_integer_shift(clip[0], clip[1]) == (-1, 0)
    with pytest.raises(ValueError, match="'nowhere'"):
        sample_clips(["nowhere"], batch=1, frames=1, size=32, rng=np.random.default_rng(0))


def test_world_video_streams_the_world_in_chunks():
    source = WorldVideo(size=32, chunk_frames=3)
    assert isinstance(source, VideoGenerator)
    with pytest.raises(RuntimeError, match="reset"):
        source.next_chunk()
    source.reset("ocean", seed=9)
    chunks = [source.next_chunk(probe=True) for _ in range(4)]
    assert [c.first_frame for c in chunks] == [0, 3, 6, 9]
    assert all(c.probe is None and c.frames.shape == (3, 32, 32, 3) for c in chunks)
    assert np.array_equal(chunks[2].positions, [6, 7, 8])
    expected = ProceduralWorld("ocean", seed=9).frames(0, 12)
    assert np.array_equal(np.concatenate([c.frames for c in chunks]), expected)
    source.reset("ocean", seed=9)
    assert source.next_chunk().first_frame == 0
    with pytest.raises(ValueError, match="jungle"):
        source.reset("jungle", seed=0)
