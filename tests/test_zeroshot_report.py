"""The bookkeeping behind notebook 08's display cells (cnclip_edu/eval/zeroshot_report.py)."""
import numpy as np

from cnclip_edu.eval.zeroshot_report import caption_stats, confusion_lines, images_of, top_confusions


def test_caption_stats_counts_openings_shape_words_and_bare_names():
    texts = ["一个红色的圆形", "左边是一个红色方块，右边是一个蓝色的圆", "圆形", "一个圆形和一个三角形和一个菱形"]
    lines = caption_stats(texts, ["一个{}", "图中只有一个{}"], ["红色", "蓝色"], ["圆形", "正方形", "三角形", "菱形"])
    assert lines[0] == f"训练描述共 4 条，平均 {np.mean([len(t) for t in texts]):.1f} 个字"
    assert "一个 50.0%" in lines[1] and "左边 25.0%" in lines[1]
    assert lines[2].endswith("：一个 50.0%（25.0%），图中只有一个 0.0%（0.0%）")
    assert "1 个 50.0%" in lines[3] and "2 个 25.0%" in lines[3] and "3 个或更多 25.0%" in lines[3]
    assert lines[4].endswith("的：1 条；一个颜色词都不提的：2 条")


def test_top_confusions_keeps_whole_tiers_and_drops_zeros():
    cm = np.array([[5, 3, 0, 1],
                   [2, 6, 0, 0],
                   [0, 3, 4, 1],
                   [0, 0, 0, 9]])
    names = ["a", "b", "c", "d"]
    assert top_confusions(cm, names) == [(3, "c", "b"), (3, "a", "b"), (2, "b", "a"), (1, "c", "d"), (1, "a", "d")]
    assert top_confusions(cm, names, tiers=1) == [(3, "c", "b"), (3, "a", "b")]
    assert top_confusions(np.eye(3, dtype=int), names[:3]) == []


def test_confusion_lines_divide_by_the_true_class():
    cm = np.array([[6, 2], [1, 7]])
    first, second = confusion_lines(cm, ["圆形", "菱形"])
    assert first.endswith("圆形 -> 菱形 2/8（25.0%），菱形 -> 圆形 1/8（12.5%）")
    assert second == "每类 8 张：1 张图 = 12.5 个百分点"


def test_images_of_filters_by_true_and_predicted_class():
    targets, preds = [0, 0, 1, 0, 1], [0, 1, 1, 1, 0]
    assert images_of(targets, preds, 0) == [0, 1, 3]
    assert images_of(targets, preds, 0, 1) == [1, 3]
    assert images_of(targets, preds, 1, 1) == [2]


def test_plot_input_grid_titles_errors_and_right_answers(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from cnclip_edu.viz.zeroshot import plot_input_grid

    paths = []
    for i, colour in enumerate(("red", "blue", "green")):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (64, 64), colour).save(paths[-1])
    fig = plot_input_grid(paths, [[1], [0, 2]], targets=[0, 0, 1], preds=[0, 1, 1], classnames=["圆形", "菱形"], size=8)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["圆形→菱形", "", "", ""] and titles[4:6] == ["圆形（认对）", "菱形（认对）"]
    assert fig.axes[0].images[0].get_array().shape[:2] == (8, 8)
    plt.close(fig)


def test_plot_class_probs_prints_the_digits_asked_for():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnclip_edu.viz.zeroshot import plot_class_probs

    fig = plot_class_probs(np.zeros((4, 4, 3)), ["a", "b"], [0.4712, 0.8661], xlim=(0.0, 1.0), digits=3)
    assert sorted(t.get_text() for t in fig.axes[1].texts) == ["0.471", "0.866"]
    plt.close(fig)


def test_plot_class_probs_marks_the_named_bars():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnclip_edu.viz.zeroshot import plot_class_probs

    fig = plot_class_probs(np.zeros((4, 4, 3)), ["a", "b", "c"], [0.9, 0.2, 0.5], marks={0: "真实", 2: "赢家"})
    ax = fig.axes[1]
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c（赢家）", "a（真实）"]   # ascending score
    blue, orange = matplotlib.colors.to_rgba("#4575b4"), matplotlib.colors.to_rgba("#f28e2b")
    assert [p.get_facecolor() for p in ax.patches] == [blue, orange, orange]
    plt.close(fig)
