"""The 8 symmetries of a square grid (rotations and reflections), numbered as the reference numbers them, and
their inverses: mazes and ARC grids are augmented with them, and ARC predictions are mapped back through them."""

from __future__ import annotations

import numpy as np

# transform t undone by transform INVERSE[t] (rotations by 90 and 270 degrees undo each other; the rest are
# their own inverses)
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def dihedral(grid: np.ndarray, t: int) -> np.ndarray:
    """0 identity, 1-3 rotations by 90/180/270 degrees, 4 left-right flip, 5 up-down flip, 6 transpose,
    7 anti-transpose."""
    match t:
        case 0:
            return grid
        case 1 | 2 | 3:
            return np.rot90(grid, k=t)
        case 4:
            return np.fliplr(grid)
        case 5:
            return np.flipud(grid)
        case 6:
            return grid.T
        case 7:
            return np.fliplr(np.rot90(grid, k=1))
    raise ValueError(f"dihedral transform {t}: expected 0..7")


def undo(grid: np.ndarray, t: int) -> np.ndarray:
    return dihedral(grid, INVERSE[t])
