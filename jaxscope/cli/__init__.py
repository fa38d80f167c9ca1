"""Command-line apps and their figures (``jaxscope campaign``, ``jaxscope reconstruct``).

The numerical core never imports this package.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
