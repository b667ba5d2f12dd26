"""Streaming VAE decode of Wan latents: chunk by chunk equals diffusers' one-shot decode; both layouts load."""

from __future__ import annotations

import pytest
import torch

from lolbench.models.wan_vae import StreamingWanDecoder, VAEError, load_vae, pixel_frames
from tests.wan_fixtures import tiny_vae, write_text_and_vae


@pytest.fixture
def one_thread():
    """The tiny convolutions run faster without thread start-up; the setting is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def one_shot(vae, latents: torch.Tensor) -> torch.Tensor:
    """diffusers' own decode of all latents at once, after undoing the per-channel latent normalization,
    as frames [B, F, 3, H, W]."""
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    return vae.decode(latents * std + mean).sample.transpose(1, 2)


@pytest.mark.parametrize("chunks", [(3, 3, 1), (1, 3, 3)])
def test_streaming_decode_equals_one_shot(chunks, one_thread):
    vae = tiny_vae()
    latents = torch.randn(1, 16, sum(chunks), 4, 4, generator=torch.Generator().manual_seed(0))
    expected = one_shot(vae, latents)
    decoder = StreamingWanDecoder(vae)
    parts = [decoder.decode(part) for part in latents.split(list(chunks), dim=2)]
    assert [p.shape[1] for p in parts] == [pixel_frames(chunks[0])] + [4 * c for c in chunks[1:]]
    streamed = torch.cat(parts, dim=1)
    assert streamed.shape == expected.shape == (1, 1 + 4 * (sum(chunks) - 1), 3, 32, 32)
    torch.testing.assert_close(streamed, expected, atol=1e-5, rtol=0)


def test_reset_starts_a_new_video(one_thread):
    decoder = StreamingWanDecoder(tiny_vae())
    latents = torch.randn(1, 16, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    first = decoder.decode(latents)
    decoder.decode(latents)  # continues the video: the causal cache is now warm
    decoder.reset()
    assert decoder.latent_frames == 0
    torch.testing.assert_close(decoder.decode(latents), first, atol=0, rtol=0)


def test_resumed_decoder_continues_the_video(one_thread):
    vae = tiny_vae()
    latents = torch.randn(1, 16, 6, 2, 2, generator=torch.Generator().manual_seed(2))
    expected = one_shot(vae, latents)
    first = StreamingWanDecoder(vae)
    head = first.decode(latents[:, :, :3])
    state = first.state_dict()
    first.decode(latents[:, :, 3:])  # the original goes on; the saved state must not change with it
    resumed = StreamingWanDecoder(vae)
    resumed.load_state_dict(state)
    tail = resumed.decode(latents[:, :, 3:])
    torch.testing.assert_close(torch.cat([head, tail], dim=1), expected, atol=1e-5, rtol=0)
    assert resumed.latent_frames == 6


def test_pixel_frames():
    assert [pixel_frames(n) for n in range(5)] == [0, 1, 5, 9, 13]


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_both_layouts_load_the_same_weights(tmp_path, layout):
    _, vae = write_text_and_vae(tmp_path, layout)
    loaded = load_vae(tmp_path).state_dict()
    expected = vae.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_missing_vae_names_key_and_files(tmp_path):
    with pytest.raises(VAEError) as err:
        load_vae(tmp_path)
    assert "model.wan_dir" in str(err.value)
    assert str(tmp_path / "vae" / "config.json") in str(err.value)
    assert str(tmp_path / "Wan2.1_VAE.pth") in str(err.value)
