"""Images: patches around pixels with an exact index ↔ coordinate map (shared by deep kernel
learning and the VAEs)."""

from .patches import NORMALIZE, Patches, extract, lookup_all, valid_coordinates

__all__ = ["NORMALIZE", "Patches", "extract", "lookup_all", "valid_coordinates"]
