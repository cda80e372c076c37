"""Greedy placement of map labels around their points so that no two labels overlap."""

from __future__ import annotations

from typing import Any

# Right, left, above, below, then the diagonals: the first free one wins.
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))
_HA = {1: "left", 0: "center", -1: "right"}
_VA = {1: "bottom", 0: "center", -1: "top"}


class LabelPlacer:
    """Places annotations one by one beside their anchor, avoiding what is already placed.

    The axes limits and aspect must be final before the first label: positions are checked in
    display coordinates.
    """

    def __init__(self, ax: Any) -> None:
        self.ax = ax
        self.figure = ax.figure
        self.figure.canvas.draw()
        self.renderer = self.figure.canvas.get_renderer()
        self.taken: list[Any] = []

    def block(self, artist: Any) -> None:
        """Keep labels off an artist already drawn (a legend, a text box)."""
        self.taken.append(artist.get_window_extent(self.renderer))

    def block_point(self, xy: tuple[float, float], radius_pt: float) -> None:
        """Keep labels off a marker of `radius_pt` points at data position `xy`."""
        from matplotlib.transforms import Bbox

        x, y = self.ax.transData.transform(xy)
        r = radius_pt * self.figure.dpi / 72.0
        self.taken.append(Bbox.from_extents(x - r, y - r, x + r, y + r))

    def place(self, text: str, xy: tuple[float, float], gap_pt: float, **style: Any) -> Any:
        """Annotate `xy` with `text` in the first direction (near, then farther out) where it
        overlaps nothing placed and stays inside the axes; else where it overlaps least."""
        frame = self.ax.get_window_extent(self.renderer)
        best: tuple[float, int, int, float] | None = None
        for gap in (gap_pt, gap_pt * 2.2):
            for dx, dy in DIRECTIONS:
                label = self._annotate(text, xy, dx, dy, gap, style)
                box = label.get_window_extent(self.renderer).expanded(1.04, 1.08)
                label.remove()
                inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
                overlap = sum(_area(box, other) for other in self.taken)
                if inside and overlap == 0.0:
                    return self._keep(text, xy, dx, dy, gap, style)
                cost = overlap + (0.0 if inside else box.width * box.height)
                if best is None or cost < best[0]:
                    best = (cost, dx, dy, gap)
        assert best is not None
        return self._keep(text, xy, best[1], best[2], best[3], style)

    def _keep(
        self, text: str, xy: tuple[float, float], dx: int, dy: int, gap: float, style: Any
    ) -> Any:
        label = self._annotate(text, xy, dx, dy, gap, style)
        self.taken.append(label.get_window_extent(self.renderer).expanded(1.04, 1.08))
        return label

    def _annotate(
        self, text: str, xy: tuple[float, float], dx: int, dy: int, gap_pt: float, style: Any
    ) -> Any:
        diagonal = 0.75 if dx and dy else 1.0
        return self.ax.annotate(
            text,
            xy,
            xytext=(dx * gap_pt * diagonal, dy * gap_pt * diagonal),
            textcoords="offset points",
            ha=_HA[dx],
            va=_VA[dy],
            **style,
        )


def _area(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0
