"""Plotting helpers shared by the notebooks. `setup_cjk_font()` first, so Chinese renders.

matplotlib's default font (DejaVu Sans) has no CJK glyphs, so Chinese labels come out as empty
boxes. We look for a real CJK font — the Noto Sans CJK SC that the `mplfonts` package ships (a
dev dependency), else one installed on the system — register it and put it first in line.
Topic-specific plots live in submodules (`viz.training`, `viz.retrieval`, ...); the notebooks'
ipywidgets (search box, zero-shot demo) in `viz.widgets`.
"""
from __future__ import annotations

import functools
from pathlib import Path

# Font family names that cover Simplified Chinese, in order of preference.
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
                 "WenQuanYi Zen Hei", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
                 "Noto Sans CJK JP", "Arial Unicode MS")


def _packaged_font_files() -> list[Path]:
    try:
        import mplfonts  # ships NotoSansCJKsc-Regular.otf
    except ImportError:
        return []
    font_dir = Path(mplfonts.__file__).parent / "fonts"
    return sorted(font_dir.glob("NotoSansCJKsc-Regular.*")) + sorted(font_dir.glob("SimHei.*"))


@functools.lru_cache(maxsize=1)
def setup_cjk_font() -> str | None:
    """Make matplotlib render Chinese; returns the chosen family name, or None (with a warning)."""
    import matplotlib
    from matplotlib import font_manager

    for path in _packaged_font_files():
        font_manager.fontManager.addfont(str(path))
    available = {f.name for f in font_manager.fontManager.ttflist}
    family = next((name for name in _CJK_FAMILIES if name in available), None)
    if family is None:
        import warnings

        warnings.warn("No CJK font found: Chinese text in plots will show as boxes. "
                      "Install one with `pip install mplfonts` (or apt install fonts-noto-cjk).")
        return None
    matplotlib.rcParams["font.sans-serif"] = [family] + [
        f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["axes.unicode_minus"] = False  # the CJK font's minus sign is fine, but be safe
    return family
