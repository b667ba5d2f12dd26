"""An endless, deterministic procedural video world: training data for the tiny model and a reference source."""

from lolbench.world.scenes import BASE_SIZE, SCENES, Octave, SceneStyle, Sprite, get_scene
from lolbench.world.source import WorldVideo
from lolbench.world.world import ProceduralWorld, sample_clips

__all__ = [
    "BASE_SIZE",
    "SCENES",
    "Octave",
    "ProceduralWorld",
    "SceneStyle",
    "Sprite",
    "WorldVideo",
    "get_scene",
    "sample_clips",
]
