"""Chapter 11: from our CLIP to a small Chinese chat model that sees (the Mini-InternVL recipe)."""
from .tiling import dynamic_preprocess, find_closest_aspect_ratio  # noqa: F401
