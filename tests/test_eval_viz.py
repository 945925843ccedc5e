"""Retrieval / zero-shot plots and the notebook widgets: they build, mark hits correctly, and their
search / classify functions return what the features say."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_edu.viz import widgets
from cnclip_edu.model import create_model
from cnclip_edu.viz import retrieval, setup_cjk_font, zeroshot as viz_zs

setup_cjk_font()


def _images(n=6):
    return {1000 + i: Image.new("RGB", (16, 16), (40 * i, 20, 200 - 30 * i)) for i in range(n)}


def test_retrieval_grid_marks_hits():
    import matplotlib.pyplot as plt

    imgs = _images()
    fig = retrieval.plot_retrieval_grid(["一个红色的圆形", "蓝色的方块"], [[1000, 1001, 1002], [1003, 1004, 1005]],
                                        imgs, gold=[{1001}, set()], scores=[[0.9, 0.8, 0.7], [0.5, 0.4, 0.3]], k=3)
    axes = np.array(fig.axes).reshape(2, 4)
    assert axes[0, 0].texts[0].get_text() == "一个红色的圆形"
    assert axes[0, 2].get_xlabel() == "#2 0.80 ✓" and axes[0, 2].spines["top"].get_edgecolor()[:3] == \
        matplotlib.colors.to_rgb(retrieval.HIT)
    assert axes[1, 1].spines["top"].get_edgecolor()[:3] == matplotlib.colors.to_rgb(retrieval.MISS)
    assert axes[1, 1].get_xlabel() == "#1 0.50 ×"   # a miss is marked, not only coloured
    plt.close(fig)
    fig = retrieval.plot_retrieval_grid(["x"], [[1000]], imgs, scores=[[0.9512]], k=1, digits=3)
    assert np.array(fig.axes)[1].get_xlabel() == "#1 0.951"   # no gold given: no mark
    plt.close(fig)
    fig = retrieval.plot_recall_bars({"t2i": {"r1": 0.5, "r5": 0.8, "r10": 0.9, "mean_recall": 0.73}})
    assert not fig.axes[0].collections   # no chance given: no baseline marks
    plt.close(fig)


def test_recall_bars_mark_the_random_baseline_per_bar_with_its_mean_for_mr():
    import matplotlib.pyplot as plt

    res = {"a": {"r1": 0.5, "r5": 0.8, "r10": 0.9, "mean_recall": 0.73},
           "b": {"r1": 0.2, "r5": 0.4, "r10": 0.6, "mean_recall": 0.4}}
    fig = retrieval.plot_recall_bars(res, chance={"b": {"r1": 0.1, "r5": 0.3, "r10": 0.5}})
    ax = fig.axes[0]
    (marks,) = ax.collections                      # only "b" has a baseline
    segs = marks.get_segments()
    assert [round(float(s[0][1]), 6) for s in segs] == [0.1, 0.3, 0.5, 0.3]   # MR: the mean of the three
    bars_b = ax.containers[1]
    for seg, bar in zip(segs, bars_b):             # each mark lies across its own bar
        assert bar.get_x() < seg[0][0] < seg[1][0] < bar.get_x() + bar.get_width()
    assert "随机排序" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_recall_bars_axis_for_fractions_and_legend_below_for_many_groups():
    import matplotlib.pyplot as plt

    res = {f"s{k}": {"r1": 0.1 * k, "r5": 0.2 * k, "r10": 0.25 * k, "mean_recall": 0.18 * k} for k in range(1, 5)}
    fig = retrieval.plot_recall_bars(res)
    ax = fig.axes[0]
    assert ax.get_ylim() == pytest.approx((0, 1.1)) and max(ax.get_yticks()) == pytest.approx(1.0)
    assert ax.get_legend().get_bbox_to_anchor().y0 < ax.get_window_extent().y0     # below the axes
    plt.close(fig)
    fig = retrieval.plot_recall_bars({"t2i": {"r1": 50.0, "r5": 80.0, "r10": 90.0, "mean_recall": 73.3}})
    assert fig.axes[0].get_ylim()[1] == pytest.approx(99.0)                          # percents: no 0-1 axis
    plt.close(fig)


def test_plot_at_resolution_pairs_each_photo_with_its_low_resolution_copy():
    import matplotlib.pyplot as plt

    imgs = {i: Image.new("RGB", (40 + i, 30), (10 * i, 0, 0)) for i in range(1, 8)}
    fig = retrieval.plot_at_resolution(imgs, {i: f"p{i}" for i in imgs}, 8, cols=6, title="t")
    axes = np.array(fig.axes).reshape(4, 6)
    assert axes[0, 0].get_title() == "p1" and axes[1, 0].get_title() == "8×8"
    assert axes[1, 0].images[0].get_array().shape[:2] == (8, 8)
    assert axes[2, 0].get_title() == "p7" and not axes[2, 1].images                # 7 photos: one in the 2nd pair
    plt.close(fig)


def test_similarity_matrix_aligns_images_with_rows_and_keeps_numbers_readable():
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox

    imgs = list(_images(3).values())
    probs = np.array([[0.98, 0.01, 0.01], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])
    fig = retrieval.plot_similarity_matrix(imgs, ["一个红色的圆形", "蓝色的方块", "绿色的三角形在画面的右上角"], probs)
    ax = fig.axes[0]
    boxes = [a for a in ax.artists if isinstance(a, AnnotationBbox)]
    assert [b.xy for b in boxes] == [(-0.5, 0), (-0.5, 1), (-0.5, 2)]  # image r sits at the start of row r
    colours = {t.get_text(): matplotlib.colors.to_rgb(t.get_color()) for t in ax.texts}
    assert colours["0.98"] == (0, 0, 0) and colours["0.01"] == (1, 1, 1)  # dark text on yellow, light on purple
    assert ax.get_xticklabels()[2].get_text().count("\n") >= 1  # long captions are wrapped, not rotated
    plt.close(fig)
    with pytest.raises(ValueError, match="3 images and 2 texts"):
        retrieval.plot_similarity_matrix(imgs, ["a", "b"], probs)


def test_training_curves_keep_the_two_losses_apart():
    import matplotlib.pyplot as plt

    from cnclip_edu.viz.training import plot_training_curves

    records = [{"type": "train", "step": s, "loss": 4.0 / s, "t2i_acc": 0.1 * s, "global_batch": 64,
                "known_positives": True} for s in range(1, 5)]
    records.append({"type": "valid", "step": 4, "loss": 1.5, "t2i_r1": 0.2, "batch_size": 128})
    fig = plot_training_curves(records, resumed_at=[2])
    ax_train, ax_valid, ax_acc = fig.axes
    assert "全局 batch 64" in ax_train.get_title() and "KL" in ax_train.get_title()
    assert "batch 128" in ax_valid.get_title() and "InfoNCE" in ax_valid.get_title()
    assert len(ax_train.lines) == 2 and len(ax_valid.lines) == 2  # the curve + the resume marker
    plt.close(fig)


def test_training_curves_start_point_one_process_and_axes_from_zero():
    import matplotlib.pyplot as plt

    from cnclip_edu.viz.training import plot_training_curves

    records = [{"type": "train", "step": s, "loss": 4.0 / s, "t2i_acc": 0.1 * s} for s in range(1, 5)]
    records += [{"type": "valid", "step": s, "loss": 2.0, "t2i_r1": 0.1 * s, "batch_size": 18} for s in (2, 4)]
    fig = plot_training_curves(records, start_r1=0.05, one_process=True)
    ax_train, ax_valid, ax_acc = fig.axes
    assert "每进程" not in ax_valid.get_title() and "batch 18" in ax_valid.get_title()
    assert ax_train.get_ylim() == pytest.approx((0, 4.4)) and ax_valid.get_ylim() == pytest.approx((0, 2.2))
    start = [line for line in ax_acc.lines if list(line.get_xdata()) == [0, 2]]
    assert len(start) == 1 and list(start[0].get_ydata()) == pytest.approx([5.0, 20.0])   # step 0 -> first validation
    assert all(ax.get_xlim()[0] == 0 for ax in fig.axes)
    plt.close(fig)
    fig = plot_training_curves(records)                  # defaults: per process, no step-0 point
    assert "每进程 batch 18" in fig.axes[1].get_title() and len(fig.axes[2].lines) == 2
    plt.close(fig)


def test_zeroshot_plots():
    import matplotlib.pyplot as plt

    cm = np.array([[3, 1], [0, 4]])
    fig = viz_zs.plot_confusion_matrix(cm, ["红色", "蓝色"])
    assert fig.axes[0].images[0].get_array()[0, 0] == pytest.approx(0.75)
    plt.close(fig)
    plt.close(viz_zs.plot_accuracy_vs_templates({"combo": [0.5, 0.6, 0.7]}))
    plt.close(viz_zs.plot_class_probs(_images()[1000], ["a", "b"], [0.3, 0.7]))


def test_template_curves_mark_the_same_steps_as_the_printed_rule():
    """Bars only where m >= 10; a red ring exactly on the steps beyond noise; caps inside the y-range."""
    import matplotlib.pyplot as plt

    n = 40
    ok = np.zeros((4, n), dtype=bool)
    ok[0, :20] = True
    ok[1, :15] = True                     # -5 with m = 5: exact p = 0.0625, no bar, no ring
    ok[2, :27] = True                     # +12 with m = 12: beyond (12 > 2 sqrt 12 = 6.9), bar + ring
    ok[3, :27] = True
    ok[3, 27:29] = True
    ok[3, :3] = False                     # +2 - 3 = -1 with m = 5: nothing
    fig = viz_zs.plot_template_curves({"t": ok})
    ax, axd = fig.axes[0], fig.axes[1]    # accuracy on top, each step's d below
    for a in (ax, axd):
        rings = [line for line in a.lines if line.get_markerfacecolor() == "none"]
        assert [tuple(line.get_xdata()) for line in rings] == [(3,)]
        assert rings[0].get_markeredgecolor() == "#1a9850"    # a gain: green (a drop would be red)
    assert len(ax.collections) == 0 and len(axd.collections) == 1   # one bar, on d of the m = 12 step
    lo, hi = axd.get_ylim()
    assert lo <= 12 - 2 * np.sqrt(12) and hi >= 12 + 2 * np.sqrt(12)
    plt.close(fig)
    strict = lambda a, b: (int(b.sum()) - int(a.sum()), float(np.sqrt(np.sum(a != b))), False)   # a rule that never says beyond
    fig = viz_zs.plot_template_curves({"t": ok}, gap=strict)
    assert not [line for line in fig.axes[0].lines if line.get_markerfacecolor() == "none"]
    plt.close(fig)


def test_template_curves_show_no_tick_above_100_percent():
    """A bar at 100 % is cut there, and the axis shows no tick above 100 % (accuracy cannot pass it)."""
    import matplotlib.pyplot as plt

    ok = np.ones((3, 320), dtype=bool)
    ok[0, :16] = False                    # 95 % -> 100 %: +16 with m = 16, its +-2 sqrt(16) bar would pass 100
    fig = viz_zs.plot_template_curves({"t": ok})
    ax = fig.axes[0]
    assert ax.get_ylim()[1] <= 100 and max(ax.get_yticks()) <= 100
    assert len(fig.axes[1].collections) == 1
    plt.close(fig)


def test_tsv_images(tmp_path):
    from cnclip_edu.data import formats

    img = Image.new("RGB", (8, 8), (255, 0, 0))
    formats.write_imgs_tsv(tmp_path / "test_imgs.tsv", [(7, formats.encode_image(img))])
    store = retrieval.TsvImages(tmp_path / "test_imgs.tsv")
    assert list(store) == [7] and store[7].getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(KeyError, match="image 8 is not in"):
        store[8]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("course").eval()


def test_search_box_returns_top_images(model):
    from cnclip_edu.tokenizer import tokenize

    imgs = _images(8)
    feats = np.random.default_rng(0).standard_normal((8, 128)).astype(np.float32)
    with torch.no_grad():
        q = torch.nn.functional.normalize(model.encode_text(tokenize(["一个红色的圆形"])), dim=-1).numpy()
    feats[5] = q[0]                                    # plant the query's own direction at image 1005
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    s = widgets.RetrievalSearch(model, list(imgs), feats, imgs, k=3)
    hits = s.search("一个红色的圆形")
    assert hits[0][0] == 1005 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 3 and hits[0][1] >= hits[1][1] >= hits[2][1]
    box = s.widget()
    assert box.children[0].children[0].value == "一个红色的圆形"
    assert repr(box).startswith("（搜索框") and "VBox" not in box._repr_mimebundle_()["text/plain"]   # a saved notebook
    with pytest.raises(ValueError, match="empty query"):
        s.search("  ")


def test_zeroshot_demo(model):
    from cnclip_edu.data.transforms import image_transform

    imgs = {f"img{i}": im for i, im in enumerate(_images(3).values())}
    demo = widgets.ZeroShotDemo(model, image_transform(32), imgs)
    probs = demo.classify("img1", "红色的圆形，蓝色的正方形、绿色三角形")
    assert list(probs) == ["红色的圆形", "蓝色的正方形", "绿色三角形"]
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert widgets.parse_labels(" a, b；c  d ") == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="at least one label"):
        demo.classify("img1", " ，")
    demo.widget()


def test_confusion_matrix_rows_subset():
    """Held-out rows against every class: a (rows, classes) matrix, normalized per row; a wrong shape says so."""
    import matplotlib.pyplot as plt

    cm = np.array([[0, 3, 1], [2, 0, 2]])
    fig = viz_zs.plot_confusion_matrix(cm, ["a", "b", "c"], row_names=["b", "c"])
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (2, 3)
    assert ax.images[0].get_array()[0, 1] == pytest.approx(0.75)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c"]
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(2, 3\) \(rows x classes\)"):
        viz_zs.plot_confusion_matrix(cm.T, ["a", "b", "c"], row_names=["b", "c"])


def test_confusion_matrix_column_groups():
    """Short column names under group labels: each run of a group named once, a line between groups."""
    import matplotlib.pyplot as plt

    cm = np.ones((2, 6), dtype=int)
    fig = viz_zs.plot_confusion_matrix(cm, ["圆", "方", "星"] * 2, row_names=["x", "y"],
                                       column_groups=["红色"] * 3 + ["蓝色"] * 3)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts if t.get_text() in ("红色", "蓝色")] == ["红色", "蓝色"]
    assert [ln.get_xdata()[0] for ln in ax.lines] == [2.5]
    plt.close(fig)
    with pytest.raises(ValueError, match="column_groups has 5 names for 6 columns"):
        viz_zs.plot_confusion_matrix(cm, list("abcdef"), row_names=["x", "y"], column_groups=["g"] * 5)


def test_input_grid_titles_carry_notes(tmp_path):
    import matplotlib.pyplot as plt

    paths = []
    for i, img in enumerate(_images(3).values()):
        p = tmp_path / f"{i}.png"
        img.save(p)
        paths.append(p)
    fig = viz_zs.plot_input_grid(paths, [[0, 1], [2]], targets=[0, 0, 1], preds=[1, 0, 1],
                                 classnames=["圆形", "正方形"], size=8, notes={0: "大", 2: "小"})
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["圆形→正方形 大", "圆形（认对）", "正方形（认对） 小"]
    plt.close(fig)
