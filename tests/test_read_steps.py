"""notebook 05's step-by-step read (`data.read_steps`) is `LMDBDataset[i]` written out: same tensors,
every step timed, the steps adding up to the run; and its figure helpers (`viz.data`)."""
from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from cnclip_edu.course.timing import Laps  # noqa: E402
from cnclip_edu.data import read_steps, toy  # noqa: E402
from cnclip_edu.data.dataset import LMDBDataset, close_shared_envs  # noqa: E402
from cnclip_edu.viz.data import plot_step_bar, wrap_caption  # noqa: E402

CFG = toy.ToyConfig(seed=7, n_train=60, n_valid=20, n_test=20, zeroshot_per_class=1, workers=1)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    data = toy.ensure_toy_data(tmp_path_factory.mktemp("steps"), CFG)
    yield LMDBDataset(data / "lmdb" / "train", resolution=24, context_length=20)
    close_shared_envs(data)


def test_timed_read_is_the_datasets_read(ds, monkeypatch):
    monkeypatch.setenv("CNCLIP_DATA_CACHE_MB", "0")
    for i in (0, 3, len(ds) - 1):
        lap = Laps()
        image, tokens = read_steps.read_sample_timed(ds, i, lap)
        want_image, want_tokens = ds[i]
        assert torch.equal(image, want_image) and torch.equal(tokens, want_tokens)
        assert tuple(lap.times) == read_steps.STEPS                  # every step marked, in order, FIND/GET merged
    with pytest.raises(IndexError):
        read_steps.read_sample_timed(ds, len(ds), Laps())


def test_sample_steps_add_up_and_shares(ds):
    b = read_steps.sample_steps(ds, [0, 1, 2], repeat=1)
    assert set(b.steps) == set(read_steps.STEPS) and b.n_items == 3
    assert b.total == pytest.approx(sum(b.steps.values())) and b.whole > 0
    assert read_steps.share(b, read_steps.LMDB_STEPS) + read_steps.share(b, read_steps.DECODE_STEPS) == pytest.approx(1)
    assert set(read_steps.STEP_COLORS) == set(read_steps.STEPS)


def test_wrap_caption_cuts_between_words():
    text = "左边是一个大大的绿色菱形，右边是一个粉色的小小菱形"
    lines = wrap_caption(text).split("\n")
    assert "".join(lines) == text and len(lines) == 2
    assert lines[0].endswith("，")                                   # after punctuation, not inside 菱形
    assert all(not line[0] in "，、。；：！？）" for line in lines)
    assert wrap_caption("一块黑色的大方块") == "一块黑色的大方块"        # short: one line
    assert wrap_caption("一" * 13) == "一" * 13                       # one over the width: no 1-character line


def test_step_bar_figure():
    import matplotlib.pyplot as plt

    fig = plot_step_bar({"读": 2e-6, "解码": 300e-6, "变换": 500e-6}, title="一条样本")
    ax = fig.axes[0]
    assert len(ax.patches) == 3 and ax.get_xlim()[1] == pytest.approx(802)
    assert "802" in ax.get_xlabel()
    plt.close(fig)
    with pytest.raises(ValueError):
        plot_step_bar({"读": 0.0})


def test_augmentation_figures():
    import matplotlib.pyplot as plt
    from PIL import Image
    from torchvision import transforms as T

    from cnclip_edu.data.augment import AugmentConfig, train_transform
    from cnclip_edu.data.transforms import image_transform
    from cnclip_edu.viz.data import plot_crop_boxes, plot_transform_grid, to_image

    pil = Image.new("RGB", (64, 64), (240, 240, 240))
    pil.paste((200, 0, 0), (10, 10, 30, 30))
    eval_img = to_image(image_transform(16)(pil))
    assert eval_img.shape == (16, 16, 3) and 0 <= eval_img.min() and eval_img.max() <= 1
    fig = plot_crop_boxes(pil, 16, AugmentConfig(), seeds=(1, 2), title="t")
    boxes = [p for ax in fig.axes[:3] for p in ax.patches]
    assert len(fig.axes) == 3 * 3 + 1 and len(boxes) >= 3             # 3 x 3 panels + the colour bar
    torch.manual_seed(1)
    top, left, h, w = T.RandomResizedCrop.get_params(pil, [0.9, 1.0], [3 / 4, 4 / 3])
    assert fig.axes[1].get_title() == f"裁剪框 #1：宽 {w} × 高 {h}"   # the box the transform drew
    plt.close(fig)
    fig = plot_transform_grid(pil, [("flip", train_transform(16, AugmentConfig(hflip=1.0)))], (3, 4), eval_img)
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "flip"
    plt.close(fig)
