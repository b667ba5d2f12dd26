"""model=wan: diffusers' Wan transformer streaming through lolbench's cache, checked against diffusers itself.

Tiny random configurations are built the way diffusers' own Wan tests build them (2 layers, 2 heads of 12 dims,
4 latent channels, patch (1, 2, 2)). References come from outside the code under test: diffusers'
``WanTransformer3DModel.forward`` with its own ``WanAttnProcessor`` and its own RoPE table, given an explicit
block-causal mask over all frames.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lolbench.cache import DySinkPolicy, StaticSinkPolicy, StreamingKVCache, WindowPolicy
from lolbench.models.wan import StreamingWan, WanArch
from lolbench.models.wan_sampler import warped_sigmas
from lolbench.probes import FrameKind
from lolbench.rope import RopeSpec, Rotary, build_tables
from tests.wan_helpers import ARCH, TOL, make_stream, one_thread  # noqa: F401  (one_thread: autouse fixture)

from diffusers.models.transformers.transformer_wan import WanAttnProcessor  # noqa: E402  (after lolbench's shim)

class MaskedProcessor:
    """Diffusers' own WanAttnProcessor (its RoPE included) with an explicit self-attention mask."""

    def __init__(self, mask: torch.Tensor):
        self.mask = mask
        self.inner = WanAttnProcessor()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        return self.inner(attn, hidden_states, encoder_hidden_states, self.mask, rotary_emb)


def block_causal_mask(num_frames: int, tokens: int, chunk: int, sink: int, window: int) -> torch.Tensor:
    """[N, N] bool: a token sees its own chunk, the first ``sink`` frames and the ``window`` frames before its chunk."""
    frame = torch.arange(num_frames).repeat_interleave(tokens)
    q_chunk_start = (frame // chunk * chunk)[:, None]
    key = frame[None, :]
    same_chunk = (frame // chunk)[:, None] == (frame // chunk)[None, :]
    past = key < q_chunk_start
    return same_chunk | (past & ((key < sink) | (key >= q_chunk_start - window)))


def reference_forward(reference, arch: WanArch, latents, t: float, text, chunk: int, sink: int, window: int,
                      max_frames: int):
    """One diffusers forward over all frames (positions 0..T-1 from diffusers' own RoPE table) with the mask."""
    reference.rope = type(reference.rope)(arch.head_dim, arch.patch_size, max_frames)  # table long enough
    mask = block_causal_mask(latents.shape[2], arch.grid[0] * arch.grid[1], chunk, sink, window)
    reference.set_attn_processor({name: MaskedProcessor(mask) if ".attn1." in name else WanAttnProcessor()
                                  for name in reference.attn_processors})
    with torch.no_grad():
        return reference(latents, torch.tensor([t]), text, return_dict=False)[0]


def stream_all(stream: StreamingWan, latents, t: float, denoising_calls: int = 1) -> torch.Tensor:
    """Chunk by chunk through the cache: ``denoising_calls`` passes with commit=False, then the committing pass."""
    F = stream.cache.chunk_frames
    outputs = []
    for c in range(latents.shape[2] // F):
        x = latents[:, :, c * F : (c + 1) * F]
        stream.cache.begin_chunk(c * F, probe=False)
        for _ in range(denoising_calls):
            torch.testing.assert_close(stream(x, t, commit=False), stream(x, t, commit=False), rtol=0, atol=0)
        outputs.append(stream(x, t, commit=True))
        stream.cache.end_chunk(x.transpose(1, 2))
    return torch.cat(outputs, dim=2)


def test_single_chunk_without_cache_equals_diffusers_forward():
    stream, reference = make_stream(ARCH, WindowPolicy(9))
    gen = torch.Generator().manual_seed(1)
    latents, text = torch.randn(1, 4, 3, 4, 4, generator=gen), torch.randn(1, 7, 16, generator=gen)
    stream.set_text(text)
    stream.cache.begin_chunk(0, probe=False)
    expected = reference(latents, torch.tensor([937.5]), text, return_dict=False)[0]
    torch.testing.assert_close(stream(latents, 937.5, commit=False), expected, **TOL)
    torch.testing.assert_close(stream(latents, 937.5, commit=True), expected, **TOL)


@pytest.mark.parametrize(("policy", "sink", "window"), [(WindowPolicy(6), 0, 6), (StaticSinkPolicy(3, 3), 3, 3)])
def test_streaming_equals_one_block_causal_forward(policy, sink, window):
    stream, reference = make_stream(ARCH, policy)
    gen = torch.Generator().manual_seed(2)
    latents, text = torch.randn(1, 4, 18, 4, 4, generator=gen), torch.randn(1, 5, 16, generator=gen)
    stream.set_text(text)
    streamed = stream_all(stream, latents, 500.0, denoising_calls=1)
    expected = reference_forward(reference, ARCH, latents, 500.0, text, 3, sink, window, max_frames=32)
    torch.testing.assert_close(streamed, expected, **TOL)


def test_streaming_stays_exact_beyond_1024_latent_frames():
    """Static sink of one chunk + a window of one chunk, 1,050 frames in chunks of 15 (70 chunks): the last
    chunks attend from positions 1035..1049 to the sink at 0..14, past the 1024-entry tables of the causal
    Wan repositories. Diffusers' table is built for 1,050 positions here, so the reference sees the same ones."""
    arch = WanArch(**{**ARCH.__dict__, "latent_height": 2, "latent_width": 2})  # 1 token per frame
    stream, reference = make_stream(arch, StaticSinkPolicy(15, 15), chunk_frames=15)
    gen = torch.Generator().manual_seed(3)
    latents, text = torch.randn(1, 4, 1050, 2, 2, generator=gen), torch.randn(1, 5, 16, generator=gen)
    stream.set_text(text)
    streamed = stream_all(stream, latents, 0.0, denoising_calls=0)
    expected = reference_forward(reference, arch, latents, 0.0, text, 15, 15, 15, max_frames=1050)
    assert stream.cache.num_frames == 1050
    torch.testing.assert_close(streamed[:, :, -45:], expected[:, :, -45:], **TOL)
    torch.testing.assert_close(streamed, expected, **TOL)


@pytest.mark.parametrize(("policy", "blocks"), [
    (StaticSinkPolicy(3, 6), 1 + 2 + 1 + 1),  # LongLive: sink, 2 window chunks, the chunk committed, scratch
    (DySinkPolicy(window_frames=6, bank_size=16, embedder="latent"), 4 + 1 + 16 + 1),  # window grows by top_k chunks
])
def test_the_cache_preallocates_wan_sizes_in_the_models_dtype(policy, blocks):
    """Wan2.1-1.3B's real geometry (30 layers, 12 heads x 128 dims, 30 x 52 = 1560 tokens per latent frame),
    allocated on the meta device: keys and values are [L, B, H, blocks x 3 frames x 1560 tokens, D] in bfloat16."""
    arch = WanArch()
    rotary = Rotary(build_tables(RopeSpec(head_dim=128, num_heads=12)), *arch.grid)
    cache = StreamingKVCache(policy, rotary, "absolute", 30, 1, 12, 128, 3, dtype=torch.bfloat16, device="meta",
                             content_channels=16)
    keys, values = cache.buffers()["keys"], cache.buffers()["values"]
    assert keys.shape == values.shape == (30, 1, 12, blocks * 3 * 1560, 128) and keys.dtype == torch.bfloat16
    assert keys.device.type == "meta" and keys.nbytes == 30 * 12 * blocks * 3 * 1560 * 128 * 2


def test_text_keys_and_values_are_computed_once_per_prompt():
    stream, _ = make_stream(ARCH, WindowPolicy(3))
    calls = []
    for block in stream.transformer.blocks:
        block.attn2.to_k.register_forward_hook(lambda *args: calls.append(1))
    gen = torch.Generator().manual_seed(4)
    stream.set_text(torch.randn(1, 5, 16, generator=gen))
    stream_all(stream, torch.randn(1, 4, 6, 4, 4, generator=gen), 250.0, denoising_calls=2)
    assert len(calls) == ARCH.num_layers  # 2 chunks x 5 passes, text projected once per layer
    stream.set_text(torch.randn(1, 5, 16, generator=gen))
    stream.cache.reset()
    stream_all(stream, torch.randn(1, 4, 3, 4, 4, generator=gen), 250.0)
    assert len(calls) == 2 * ARCH.num_layers


def test_warped_timesteps_match_the_published_schedule():
    """LongLive v1 / Self-Forcing: [1000, 750, 500, 250] at shift 5 -> sigma 5s/(1+4s) at s = 1, .75, .5, .25."""
    assert warped_sigmas([1000, 750, 500, 250], 5.0) == pytest.approx([1.0, 0.9375, 5 / 6, 0.625], abs=1e-12)
    with pytest.raises(ValueError, match="strictly decreasing"):
        warped_sigmas([750, 1000], 5.0)


# ---------------------------------------------------------------------- through the run config


WAN_TINY = ["model=wan_tiny"]


@pytest.mark.parametrize("change", [["jitter.sigma=0.5"], ["rope=pi"], ["rope=ntk"], ["rope=yarn"], ["rope=riflex"]])
def test_jitter_and_rope_methods_change_only_the_temporal_rope_dims(run_config, change):
    from lolbench.models.build import build_generator

    plain, _ = build_generator(run_config([*WAN_TINY, "jitter.sigma=0"]))
    changed, _ = build_generator(run_config([*WAN_TINY, *change]))
    time_dims = plain.model.transformer.rope.t_dim  # diffusers' own split of the head dim
    x = torch.randn(1, 2, 3 * 16, 12, generator=torch.Generator().manual_seed(5))
    pos = torch.tensor([7, 500, 100_000])
    a, b = plain.cache.rotary.rotate(x, pos), changed.cache.rotary.rotate(x, pos)
    assert torch.equal(a[..., time_dims:], b[..., time_dims:])
    assert not torch.allclose(a[..., :time_dims], b[..., :time_dims])


def test_sigma_zero_is_bitwise_no_jitter(run_config):
    from lolbench.models.build import build_generator

    runs = []
    for jitter in (["jitter=none"], ["jitter.sigma=0"]):
        generator, _ = build_generator(run_config([*WAN_TINY, *jitter]))
        generator.reset_embeds(torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(6)), seed=0)
        runs.append(torch.cat([generator.next_latents().latents for _ in range(3)], dim=1))
    assert torch.equal(runs[0], runs[1])


def test_probes_sum_to_one_per_layer_and_head(run_config):
    from lolbench.models.build import build_generator

    generator, _ = build_generator(run_config([*WAN_TINY, "sink=static"]))
    generator.reset_embeds(torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(7)), seed=0)
    for _ in range(5):
        generator.next_latents()
    chunk = generator.next_latents(probe=True)
    assert chunk.probe.mass.shape == (ARCH.num_layers, ARCH.num_heads, 3 + 9 + 3)
    np.testing.assert_allclose(chunk.probe.mass.sum(axis=2), 1.0, atol=1e-5)
    assert chunk.probe.kind.tolist() == [FrameKind.SINK] * 3 + [FrameKind.LOCAL] * 9 + [FrameKind.CURRENT] * 3
    assert chunk.positions.tolist() == [15, 16, 17] and chunk.latents.shape == (4, 3, 8, 8)


def test_next_chunk_without_a_decoder_says_what_is_missing(run_config):
    from lolbench.models.build import build_generator

    generator, info = build_generator(run_config(WAN_TINY))
    assert info["backbone"] == "wan2.1(random-init)"
    generator.reset_embeds(torch.zeros(1, 16, 16), seed=0)
    with pytest.raises(RuntimeError, match="decoder"):
        generator.next_chunk()


@pytest.mark.parametrize(("preset", "sink"), [
    ("longlive", {"name": "static", "sink_frames": 3, "window_frames": 6}),  # local_attn_size 12, sink 3
    ("self_forcing", {"name": "window", "window_frames": 18}),  # 21-frame cache, no sink
    ("dysink", {"name": "dysink", "sink_frames": 0, "window_frames": 6, "top_k": 2, "gate_tau": 0.8}),
])
def test_presets_set_the_published_geometry_and_build(run_config, preset, sink):
    from lolbench.models.build import build_generator

    cfg = run_config([f"+preset={preset}", "model=wan_tiny"])
    assert {k: cfg.sink[k] for k in sink} == sink
    assert (list(cfg.model.timesteps), cfg.model.shift, cfg.model.chunk_frames) == ([1000, 750, 500, 250], 5.0, 3)
    generator, _ = build_generator(cfg)
    assert generator.cache.policy.window_frames == sink["window_frames"]


@pytest.mark.parametrize("sink", [["sink=static"], ["sink=dysink", "sink.embedder=latent", "sink.window_frames=3"]])
def test_resume_from_state_dict_continues_bitwise(run_config, sink):
    """The resume protocol of lolbench.generator: after K chunks take state_dict(); a fresh generator that is
    reset and loads it makes the same next chunks, bit for bit."""
    from lolbench.models.build import build_generator

    cfg = run_config([*WAN_TINY, *sink])
    text = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(8))
    first, _ = build_generator(cfg)
    first.reset_embeds(text, seed=3)
    for _ in range(6):
        first.next_latents()
    state = first.state_dict()
    expected = [first.next_latents() for _ in range(3)]
    second, _ = build_generator(cfg)
    second.reset_embeds(text, seed=3)
    second.load_state_dict(state)
    for want, got in zip(expected, (second.next_latents() for _ in range(3))):
        assert torch.equal(want.latents, got.latents) and want.first_frame == got.first_frame
        untimed = [{k: v for k, v in chunk.stats.items() if not k.startswith("seconds")} for chunk in (want, got)]
        np.testing.assert_equal(*untimed)  # NaN (undefined) statistics count as equal


@pytest.mark.parametrize("sink", [["sink=window"], ["sink=static", "rope.positions=rolling"], ["sink=deep"],
                                  ["sink=dysink", "sink.embedder=latent", "sink.window_frames=3"]])
def test_bfloat16_runs_every_sink_policy_with_the_cache_in_the_models_dtype(run_config, sink):
    from lolbench.models.build import build_generator

    generator, _ = build_generator(run_config([*WAN_TINY, *sink, "model.dtype=bfloat16"]))
    transformer = generator.model.transformer
    assert transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert transformer.condition_embedder.time_embedder.linear_1.weight.dtype == torch.float32  # kept, as diffusers
    assert generator.cache.buffers()["keys"].dtype == torch.bfloat16
    generator.reset_embeds(torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(9)), seed=0)
    chunks = [generator.next_latents(probe=i == 4) for i in range(5)]
    assert all(torch.isfinite(c.latents).all() for c in chunks)
    np.testing.assert_allclose(chunks[-1].probe.mass.sum(axis=2), 1.0, atol=2e-2)  # bfloat16 softmax
