"""The toy world's names that the exercises of notebook 00 share: its colours, its shapes and the held-out
combinations (the ones training never showed). 00.2 (nb00.py) and 00.3 (nb00_probe.py) both draw their
cases from these; a part of its own, so that neither of the two imports the other."""
from __future__ import annotations

_COLOURS = ["红色", "橙色", "黄色", "绿色", "蓝色", "紫色", "粉色", "黑色"]
_SHAPES = ["圆形", "正方形", "三角形", "五角星", "十字", "菱形"]
_HELDOUT = [("红色", "五角星"), ("紫色", "十字"), ("橙色", "三角形"), ("粉色", "圆形"), ("蓝色", "菱形"),
            ("绿色", "正方形"), ("黑色", "五角星"), ("黄色", "十字")]
