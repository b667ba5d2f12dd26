"""DySink (arXiv 2605.21028): a memory bank of past chunks retrieved as dynamic sinks, plus the sink anomaly gate.

The policy holds the parameters and, through ``SinkPolicy.select``, the retrieval rule (top-k outside the sink
and the local window; the window grows by a chunk per missing entry). ``MemoryBank`` holds the per-video
embeddings and the dedup and eviction rules; the entries' keys and values live in the KV cache's storage, in
the bank block with the same slot number. ``gate_consensus`` is the anomaly test the cache runs per layer
and per attention call.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from lolbench.cache.embed import EMBEDDERS
from lolbench.cache.policies import SinkPolicy, check_size


class DySinkPolicy(SinkPolicy):
    """Static sink (default none) + ``top_k`` retrieved chunks + a local window of ``window_frames``.

    ``dedup_threshold``: a chunk enters the bank only if its largest cosine to the stored entries is at most
    this. ``gate``/``gate_tau``: drop a retrieved entry in a layer and call when more than ``gate_tau`` of the
    heads prefer it to the local window. ``embedder`` names the chunk embedder (lolbench.cache.embed).
    """

    name = "dysink"

    def __init__(
        self,
        sink_frames: int = 0,
        window_frames: int = 9,
        top_k: int = 2,
        bank_size: int = 64,
        dedup_threshold: float = 0.95,
        gate: bool = True,
        gate_tau: float = 0.8,
        embedder: str = "pixel",
    ):
        super().__init__(sink_frames, window_frames)
        check_size("top_k", top_k, minimum=1)
        check_size("bank_size", bank_size, minimum=1)
        if top_k > bank_size:
            raise ValueError(f"sink.top_k={top_k} exceeds sink.bank_size={bank_size}")
        if isinstance(dedup_threshold, bool) or not isinstance(dedup_threshold, (int, float)) \
                or not -1.0 <= dedup_threshold <= 1.0:
            raise ValueError(f"sink.dedup_threshold must be a cosine in [-1, 1], got {dedup_threshold!r}")
        if not isinstance(gate, bool):
            raise ValueError(f"sink.gate must be true or false, got {gate!r}")
        if isinstance(gate_tau, bool) or not isinstance(gate_tau, (int, float)) or not 0.0 <= gate_tau <= 1.0:
            raise ValueError(f"sink.gate_tau must be a fraction of heads in [0, 1], got {gate_tau!r}")
        if embedder not in EMBEDDERS:
            raise ValueError(f"sink.embedder={embedder!r} is not one of {sorted(EMBEDDERS)}")
        self.top_k = top_k
        self.bank_size = bank_size
        self.dedup_threshold = float(dedup_threshold)
        self.gate = gate
        self.gate_tau = float(gate_tau)
        self.embedder = embedder

    def check(self, chunk_frames: int) -> None:
        super().check(chunk_frames)
        if self.window_frames % chunk_frames:
            raise ValueError(
                f"sink.window_frames={self.window_frames} must be a whole number of chunks of {chunk_frames} "
                "frames for dysink: its retrieval query is the embeddings of the chunks in the window"
            )


class MemoryBank:
    """Embeddings of stored past chunks, one bank per video of the batch, with a fixed number of slots.

    Bookkeeping of a few dozen small vectors, so plain numpy on the CPU (tiny torch ops pay thread start-up).
    Products use ``np.einsum`` rather than ``@``: ``@`` goes to the BLAS, whose worker threads then spin beside
    torch's and slowed generation by a third once the bank was full (measured with the shipped checkpoint).

    When the bank is full, the entry evicted is the most redundant one: the largest cosine to any other entry
    (the newcomer included), the oldest on ties. Retrieval wants a bank that covers as many distinct scenes as
    possible; an entry with a near twin costs least coverage when removed, and the oldest-on-ties rule keeps
    DySink's preference for early content among equals.
    """

    def __init__(self, batch: int, size: int, dim: int, query_chunks: int, dedup_threshold: float):
        self.dedup_threshold = dedup_threshold
        self.embedding = np.zeros((batch, size, dim), dtype=np.float32)  # [B, size, E]
        self.chunk = np.full((batch, size), -1, dtype=np.int64)  # chunk index per slot, -1 = free
        self.recent = np.zeros((batch, query_chunks, dim), dtype=np.float32)  # ring of the last chunks' embeddings
        # cosine between stored entries, kept up to date on every store so that eviction needs no [size, size]
        # product per chunk; rows of free slots are stale until the slot is filled (eviction only runs when full)
        self.similarity = np.full((batch, size, size), -np.inf, dtype=np.float32)  # [B, size, size]
        self.seen = 0  # chunks observed since reset

    def reset(self) -> None:
        self.chunk.fill(-1)
        self.seen = 0

    def occupancy(self) -> float:
        """Mean number of stored entries per video."""
        return float((self.chunk >= 0).sum(axis=1).mean())

    def ranked(self, b: int) -> list[tuple[int, float]]:
        """(chunk index, score) of video ``b``'s entries, best first (older first on ties); the score is the
        mean cosine to the embeddings of the most recent chunks (DySink's retrieval query)."""
        slots = np.flatnonzero(self.chunk[b] >= 0)
        if slots.size == 0 or self.seen == 0:
            return []
        query = self.recent[b, : min(self.seen, self.recent.shape[1])].mean(axis=0)  # [E]
        scores = np.einsum("ne,e->n", self.embedding[b, slots], query)  # [n]
        chunks = self.chunk[b, slots]
        order = np.lexsort((chunks, -scores))
        return [(int(chunks[i]), float(scores[i])) for i in order]

    def slot_of(self, b: int, chunk: int) -> int:
        """Slot holding ``chunk`` in video ``b``'s bank."""
        return int(np.flatnonzero(self.chunk[b] == chunk)[0])

    def add(self, embedding: np.ndarray, chunk: int) -> np.ndarray:
        """Observe chunk ``chunk`` (embeddings [B, E], unit norm); store it where it is not a near-duplicate.

        Returns the slot it was stored in per video, -1 where it was skipped.
        """
        self.recent[:, self.seen % self.recent.shape[1]] = embedding
        self.seen += 1
        slots = np.full(len(self.chunk), -1, dtype=np.int64)
        for b in range(len(self.chunk)):
            occupied = self.chunk[b] >= 0
            cosine = np.einsum("se,e->s", self.embedding[b], embedding[b])  # [size]
            if occupied.any() and cosine[occupied].max() > self.dedup_threshold:
                continue
            free = np.flatnonzero(~occupied)
            slot = free[0] if free.size else self._most_redundant(b, cosine)
            self.embedding[b, slot] = embedding[b]
            self.chunk[b, slot] = chunk
            self.similarity[b, slot, :] = cosine
            self.similarity[b, :, slot] = cosine
            self.similarity[b, slot, slot] = -np.inf
            slots[b] = slot
        return slots

    def _most_redundant(self, b: int, cosine_to_new: np.ndarray) -> int:
        redundancy = np.maximum(self.similarity[b].max(axis=1), cosine_to_new)  # [size]
        candidates = np.flatnonzero(redundancy == redundancy.max())
        return int(candidates[np.argmin(self.chunk[b, candidates])])

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Entries, recent-chunk ring, cosines and the count of observed chunks (copies)."""
        return {**{name: array.copy() for name, array in self.buffers().items()}, "seen": self.seen}

    def load_state_dict(self, state: dict[str, np.ndarray | int]) -> None:
        for name, array in self.buffers().items():
            if np.shape(state[name]) != array.shape:
                raise ValueError(f"memory bank state {name} has shape {np.shape(state[name])}, expected {array.shape}")
            array[...] = state[name]
        self.seen = int(state["seen"])

    def buffers(self) -> dict[str, np.ndarray]:
        return {"bank_embedding": self.embedding, "bank_chunk": self.chunk, "bank_recent": self.recent,
                "bank_similarity": self.similarity}


def gate_consensus(q_mean: Tensor, entry_keys: Tensor, local_key: Tensor) -> Tensor:
    """DySink's anomaly consensus ρ_e: the fraction of heads whose mean query scores entry e above the local
    window, r_h(e) = q̄_h·k̄_e > ℓ_h = q̄_h·k̄_local. A retrieved sink that wins in nearly every head at once is
    the inter-head homogenization behind sink-collapse, so the gate drops entries with ρ_e > τ.

    q_mean: [B, H, D]; entry_keys: [B, E, H, D] mean key of each entry; local_key: [B, H, D]. Returns [B, E].
    """
    entry_score = torch.einsum("bhd,behd->beh", q_mean, entry_keys)  # [B, E, H]
    local_score = (q_mean * local_key).sum(dim=-1)  # [B, H]
    return (entry_score > local_score[:, None, :]).float().mean(dim=-1)
