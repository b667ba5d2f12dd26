"""The result schema: every key a metric can write, as data.

One row per key pattern. ``{...}`` in a pattern stands for the name of the distance, flow backend or feature
backbone that produced the number (see PLACEHOLDERS), so a proxy is never reported under a real model's
name. ``render_markdown()`` prints the table for the README; tests check that every key a suite computes
matches exactly one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lolbench.metrics.base import StreamingMetric
from lolbench.metrics.cycles import CycleDetector
from lolbench.metrics.dynamic import DynamicDegree
from lolbench.metrics.heads import HeadHomogeneity
from lolbench.metrics.quality import VBenchQuality
from lolbench.metrics.sink_distance import SinkDistance

PLACEHOLDERS = {
    "distance": "sink distance used: `rms` (pixels), `lpips-alex`, or a feature backbone's name (cosine distance, "
                "e.g. `pixel`, `dino-vitb16`)",
    "flow": "optical-flow backend: `raft-things` (VBench's RAFT from its cache), `dis`, `farneback`, or the "
            "torchvision RAFT variant loaded from `flow_weights`",
    "backbone": "feature backbone or scorer as loaded (`dino-vitb16`, `clip-vitb32`, `laion-aesthetic`, other "
                "geometries by width/depth/patch); consistency keys add `/in-clip` (no VBench-Long clip-to-clip "
                "fusion), `pixel/in-clip` is the offline stand-in",
    "filter": "`static-filter-<flow>` (VBench-Long's static filter with that RAFT) or `no-static-filter`",
    "interpolator": "frame interpolator of motion smoothness: `amt-s` (VBench's), or `flow-<flow>` (flow warping)",
    "dims": "comma-separated `dimension:tag` of every dimension the partial score holds",
}


@dataclass(frozen=True)
class KeySpec:
    """One documented result key (pattern)."""

    pattern: str
    metric: type[StreamingMetric]
    description: str
    range: str
    unit: str
    higher_is_better: bool | None  # None: a diagnostic with no better direction

    @property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"\{\w+\}", self.pattern)
        return re.compile("^" + r"[^\]]+".join(re.escape(p) for p in parts) + "$")

    @property
    def metric_name(self) -> str:
        return self.metric.name

    @property
    def version(self) -> str:
        return self.metric.version


SD, CY, HH, DD, VQ = SinkDistance, CycleDetector, HeadHomogeneity, DynamicDegree, VBenchQuality
NORM = "x reference"  # normalized sink distance: 1 = as far from the sink as usual

SCHEMA: tuple[KeySpec, ...] = (
    # sink distance (one video)
    KeySpec("sink_distance_reference[{distance}]", SD, "reference level: median raw sink distance over the "
            "reference window after warm-up; the normalizer", "[0, inf)", "raw distance", None),
    KeySpec("sink_distance_min[{distance}]", SD, "minimum normalized sink distance after warm-up", "[0, inf)", NORM,
            True),
    KeySpec("sink_distance_min_frame[{distance}]", SD, "frame where the minimum is reached", "[warm-up, frames)",
            "frame", None),
    KeySpec("sink_distance_drop[{distance}]", SD, "distance drop 100 * max(0, 1 - minimum); LoL's per-video "
            "sink-collapse", "[0, 100]", "%", False),
    KeySpec("sink_collapse_events[{distance}]", SD, "number of collapse events (dips below the threshold, "
            "deepest frame of each dip, min separation applied)", "[0, frames)", "events", False),
    KeySpec("sink_collapse_event_frames[{distance}]", SD, "frame index of each collapse event", "list of frames",
            "frame", None),
    KeySpec("sink_collapse_event_depths[{distance}]", SD, "depth of each event: 1 - normalized distance (1 = exact "
            "copy of a sink frame)", "(1 - threshold, 1]", NORM, False),
    KeySpec("sink_pull_period[{distance}]", SD, "period of the best-fitting sinusoid of the detrended normalized "
            "curve (periodic pull toward the sink)", "[min_period, trend window / 2]", "frames", None),
    KeySpec("sink_pull_period_s[{distance}]", SD, "the same period in seconds", "[0, inf)", "s", None),
    KeySpec("sink_pull_amplitude[{distance}]", SD, "amplitude of that sinusoid", "[0, inf)", NORM, False),
    KeySpec("sink_pull_r2[{distance}]", SD, "fraction of the detrended curve's variance the sinusoid explains "
            "(small = the period is noise)", "[0, 1]", "", None),
    # sink distance (a set of videos; written by `python -m lolbench.eval` and the analysis scripts)
    KeySpec("sink_collapse_max[{distance}]", SD, "Sink-Collapse Max: largest distance drop over the videos",
            "[0, 100]", "%", False),
    KeySpec("sink_collapse_avg[{distance}]", SD, "Sink-Collapse Avg: mean distance drop over the videos",
            "[0, 100]", "%", False),
    KeySpec("cross_run_coherence[{distance}]", SD, "mean pairwise Pearson r of the detrended sink-distance curves "
            "of runs of one setting (high = dips at fixed frame indices, the RoPE signature)", "[-1, 1]", "", False),
    # cycles
    KeySpec("cycle_period", CY, "lag of the dominant peak of the descriptor autocorrelation", "[2, max_period]",
            "frames", None),
    KeySpec("cycle_period_s", CY, "the same period in seconds", "[0, max_period_s]", "s", None),
    KeySpec("cycle_strength", CY, "autocorrelation at that lag (1 = exact repetition, ~0 = none)", "(0, 1]", "",
            False),
    KeySpec("recurrence_rate", CY, "fraction of frames whose nearest earlier frame (outside the local window) is "
            "closer than ratio x their median distance to earlier frames", "[0, 1]", "", False),
    # head homogeneity (runs of an instrumented model only)
    KeySpec("head_probes", HH, "number of probed chunks", "[0, chunks]", "chunks", None),
    KeySpec("head_sink_mass", HH, "mean attention mass on sink + retrieved frames over chunks, layers, heads",
            "[0, 1]", "", None),
    KeySpec("head_sink_spike_fraction", HH, "fraction of (chunk, layer, head) with more than half their mass on "
            "sink + retrieved frames", "[0, 1]", "", False),
    KeySpec("head_consensus", HH, "mean fraction of a layer's heads that attend more to sink + retrieved frames "
            "than to the local window", "[0, 1]", "", False),
    KeySpec("head_consensus_max", HH, "largest consensus of any layer in any chunk", "[0, 1]", "", False),
    KeySpec("head_entropy", HH, "mean normalized entropy of the heads' most-attended key frame per layer "
            "(0 = all heads on one frame)", "[0, 1]", "", True),
    KeySpec("head_entropy_min", HH, "lowest per-chunk head entropy", "[0, 1]", "", True),
    KeySpec("head_jsd", HH, "mean pairwise Jensen-Shannon divergence between heads of a layer", "[0, 1]", "bits",
            True),
    KeySpec("head_dip_chunks[{distance}]", HH, "probed chunks used for the co-occurrence (next chunk after "
            "warm-up and inside the video)", "[0, chunks]", "chunks", None),
    KeySpec("head_dip_corr[{distance}]", HH, "Pearson r of consensus in chunk c and pull (1 - min normalized "
            "distance) in chunk c + 1", "[-1, 1]", "", None),
    KeySpec("head_consensus_at_events[{distance}]", HH, "mean consensus of chunks followed by a collapse event",
            "[0, 1]", "", None),
    KeySpec("head_consensus_elsewhere[{distance}]", HH, "mean consensus of the other probed chunks", "[0, 1]", "",
            None),
    # dynamic degree
    KeySpec("dynamic_degree[{flow}]", DD, "VBench dynamic degree: fraction of VBench-Long clips that move",
            "[0, 1]", "", True),
    KeySpec("dynamic_degree_clips[{flow}]", DD, "clips scored", "[0, inf)", "clips", None),
    KeySpec("dynamic_flow_ratio[{flow}]", DD, "mean top-5% flow magnitude over the motion threshold",
            "[0, inf)", "x threshold", True),
    # VBench-style quality (VBench-Long clips); each *_drift is its mean over the last drift_seconds minus the
    # first drift_seconds (negative = quality decays)
    KeySpec("quality_clips", VQ, "VBench-Long clips scored", "[0, inf)", "clips", None),
    KeySpec("subject_consistency[{backbone}]", VQ, "VBench subject consistency (DINO features in VBench)", "[0, 1]",
            "", True),
    KeySpec("subject_consistency_drift[{backbone}]", VQ, "drift of subject consistency", "[-1, 1]", "", True),
    KeySpec("background_consistency[{backbone}]", VQ, "VBench background consistency (CLIP features in VBench)",
            "[0, 1]", "", True),
    KeySpec("background_consistency_drift[{backbone}]", VQ, "drift of background consistency", "[-1, 1]", "", True),
    KeySpec("temporal_flickering[{filter}]", VQ, "(255 - mean abs. difference of consecutive frames) / 255, "
            "mean over the clips the static filter keeps (every clip without it)",
            "[0, 1]", "", True),
    KeySpec("temporal_flickering_drift[{filter}]", VQ, "drift of temporal flickering", "[-1, 1]", "", True),
    KeySpec("temporal_flickering_static_clips[{filter}]", VQ, "clips VBench's static filter kept", "[0, clips]",
            "clips", None),
    KeySpec("motion_smoothness[{interpolator}]", VQ, "(255 - MAE of interpolated odd frames) / 255", "[0, 1]", "",
            True),
    KeySpec("motion_smoothness_drift[{interpolator}]", VQ, "drift of motion smoothness", "[-1, 1]", "", True),
    KeySpec("aesthetic_quality[{backbone}]", VQ, "LAION aesthetic score / 10 (CLIP ViT-L/14 + linear head)",
            "[0, 1]", "", True),
    KeySpec("aesthetic_quality", VQ, "the aesthetic key without weights: always 'unavailable: <reason>'", "-", "",
            True),
    KeySpec("aesthetic_quality_drift[{backbone}]", VQ, "drift of aesthetic quality", "[-1, 1]", "", True),
    KeySpec("aesthetic_quality_drift", VQ, "the aesthetic drift key without weights: 'unavailable: <reason>'", "-",
            "", True),
    KeySpec("imaging_quality[{backbone}]", VQ, "MUSIQ score / 100", "[0, 1]", "", True),
    KeySpec("imaging_quality", VQ, "the imaging key without MUSIQ: always 'unavailable: <reason>'", "-", "", True),
    KeySpec("imaging_quality_drift[{backbone}]", VQ, "drift of imaging quality (VBench users' 'quality drift')",
            "[-1, 1]", "", True),
    KeySpec("imaging_quality_drift", VQ, "the imaging drift key without MUSIQ: 'unavailable: <reason>'", "-", "",
            True),
    KeySpec("quality_score", VQ, "VBench's Quality Score: all seven dimensions from VBench's own models and rules",
            "about [0, 1]", "", True),
    KeySpec("quality_score[partial:{dims}]", VQ, "VBench's Quality Score formula, weights renormalized, over the "
            "dimensions on VBench's scale (each once; pixel-stand-in consistency left out)", "about [0, 1]", "",
            True),
    KeySpec("quality_score_dims", VQ, "the dimensions included in the partial quality score", "list of names", "",
            None),
)


def find_spec(key: str) -> KeySpec | None:
    """The row documenting ``key``, or None."""
    for spec in SCHEMA:
        if spec.regex.match(key):
            return spec
    return None


def undocumented(keys: Iterable[str]) -> list[str]:
    """Keys that no row of the schema documents."""
    return [key for key in keys if find_spec(key) is None]


def render_markdown() -> str:
    """The schema as a Markdown table, followed by what the placeholders stand for."""
    better = {True: "higher", False: "lower", None: "-"}
    lines = ["| key | description | range | unit | better | metric (version) |", "|---|---|---|---|---|---|"]
    for spec in SCHEMA:
        lines.append(f"| `{spec.pattern}` | {spec.description} | {spec.range} | {spec.unit} | "
                     f"{better[spec.higher_is_better]} | {spec.metric_name} (v{spec.version}) |")
    lines.append("")
    lines += [f"- `{{{name}}}`: {text}" for name, text in PLACEHOLDERS.items()]
    return "\n".join(lines) + "\n"
