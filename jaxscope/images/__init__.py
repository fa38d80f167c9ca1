"""Images: patches around pixels with an exact index ↔ coordinate map (shared by deep kernel
learning and the VAEs)."""

from .patches import NORMALIZE, Patches, extract, lookup_all, valid_coordinates

__all__ = ["NORMALIZE", "Patches", "extract", "lookup_all", "valid_coordinates"]
from .scans import Scan, load_scan, scan_from_array, scan_from_points  # noqa: E402

__all__ += ["Scan", "load_scan", "scan_from_array", "scan_from_points"]
