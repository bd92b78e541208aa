"""Data with known factors: procedural and real dSprites, and a small generated colour set."""

from .colour_sprites import ColourSprites, ColourSpritesDataset, colour_sprites
from .dsprites import (
    BASES,
    FACTOR_NAMES,
    METADATA,
    NUM_IMAGES,
    SIZES,
    NpzDSprites,
    ProceduralDSprites,
    classes_to_index,
    classes_to_values,
    index_to_classes,
    iter_images,
    load_npz,
    render,
    render_index,
)

__all__ = [
    "BASES",
    "FACTOR_NAMES",
    "METADATA",
    "NUM_IMAGES",
    "SIZES",
    "ColourSprites",
    "ColourSpritesDataset",
    "NpzDSprites",
    "ProceduralDSprites",
    "classes_to_index",
    "classes_to_values",
    "colour_sprites",
    "index_to_classes",
    "iter_images",
    "load_npz",
    "render",
    "render_index",
]
