"""The simulator's offered-load vocabulary: the shared core of `computenet.offered_load`."""

from computenet.offered_load import (
    ALL_MODELS,
    LoadError,
    MeanSpeed,
    OfferedLoad,
    Window,
    accepted_models,
    arrival_window,
    at_load,
    fits_somewhere,
    load_factor,
    offered_load,
    scale_arrivals,
)

__all__ = [
    "ALL_MODELS",
    "LoadError",
    "MeanSpeed",
    "OfferedLoad",
    "Window",
    "accepted_models",
    "arrival_window",
    "at_load",
    "fits_somewhere",
    "load_factor",
    "offered_load",
    "scale_arrivals",
]
