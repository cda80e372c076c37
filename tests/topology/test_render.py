"""The map picture is a real PNG of a sensible size."""

from __future__ import annotations

import struct
from pathlib import Path

from topology import default_topology, synthetic_topology
from topology.render import render_map


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_default_map_is_a_png_of_sensible_size(tmp_path: Path) -> None:
    out = render_map(default_topology(), tmp_path / "china.png")
    width, height = _png_size(out)
    assert 600 <= width <= 3000 and 500 <= height <= 3000
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.05  # not a blank picture


def test_large_maps_render_without_labels(tmp_path: Path) -> None:
    out = render_map(
        synthetic_topology(80, 20, 300, seed=1), tmp_path / "big.png", title="synthetic"
    )
    assert _png_size(out)[0] >= 600
