"""Data: dSprites (procedural and real) and a generated colour set with known factors; colour image folders
and arrays (:mod:`elbits.data.images`); patches of shipped photographs (:mod:`elbits.data.photos`)."""

from .batches import fetch
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
    dsprites_factor_entropy,
    index_to_classes,
    iter_images,
    load_npz,
    render,
    render_index,
)
from .images import PREPROCESS, ImageFolder, ImageReport, load_images
from .photos import photo_names, photo_patches

__all__ = [
    "dsprites_factor_entropy",
    "BASES",
    "FACTOR_NAMES",
    "METADATA",
    "NUM_IMAGES",
    "SIZES",
    "ColourSprites",
    "ColourSpritesDataset",
    "ImageFolder",
    "ImageReport",
    "NpzDSprites",
    "PREPROCESS",
    "ProceduralDSprites",
    "classes_to_index",
    "classes_to_values",
    "colour_sprites",
    "fetch",
    "index_to_classes",
    "iter_images",
    "load_images",
    "load_npz",
    "photo_names",
    "photo_patches",
    "render",
    "render_index",
]
