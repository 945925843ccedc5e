"""Chinese text in plots must render with a real CJK font, not as empty boxes."""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from cnclip_edu.viz import setup_cjk_font  # noqa: E402


def test_cjk_font_found_and_covers_chinese():
    family = setup_cjk_font()
    assert family is not None, "no CJK font: install the dev extra (mplfonts)"
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    from matplotlib.ft2font import FT2Font

    font = FT2Font(path)
    charmap = font.get_charmap()
    for ch in "红色的圆形左边是皮卡丘杰尼龟":
        assert ord(ch) in charmap, f"{family} ({path}) lacks {ch!r}"


def test_chinese_label_draws_without_missing_glyph_warning():
    setup_cjk_font()
    fig, ax = plt.subplots()
    ax.set_title("文本到图像检索 Recall@1")
    ax.bar(["红色的圆形", "蓝色的三角形"], [0.7, 0.3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    missing = [w for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert not missing, [str(w.message) for w in missing]
