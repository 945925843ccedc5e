"""Pixel unshuffle and the MLP projector, against transformers' InternVL (the oracle), a hand-computed
example, and the course ViT's own computation for the patch features."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cnclip_edu as cc
from cnclip_edu.mllm.projector import MLPProjector, PatchFeatures, pixel_unshuffle, tile_tokens


def test_hand_computed_4x4_example():
    x = torch.arange(16.0).reshape(1, 4, 4, 1)  # one channel, values = row * 4 + col
    y = pixel_unshuffle(x)
    assert y.shape == (1, 2, 2, 4)
    # each output token stacks its 2x2 block row-major: top-left, top-right, bottom-left, bottom-right
    assert y[0, 0, 0].tolist() == [0, 1, 4, 5]
    assert y[0, 0, 1].tolist() == [2, 3, 6, 7]
    assert y[0, 1, 0].tolist() == [8, 9, 12, 13]
    assert y[0, 1, 1].tolist() == [10, 11, 14, 15]
    two = torch.stack([x[..., 0], 100 + x[..., 0]], -1)  # D = 2: a patch's channels stay together
    assert pixel_unshuffle(two)[0, 0, 0].tolist() == [0, 100, 1, 101, 4, 104, 5, 105]


@pytest.mark.parametrize("shape", [(2, 4, 4, 128), (1, 32, 32, 8), (3, 8, 4, 5), (1, 4, 8, 3)])
def test_equals_transformers_internvl_pixel_shuffle(shape):
    modeling = pytest.importorskip("transformers.models.internvl.modeling_internvl")
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    theirs = modeling.InternVLModel.pixel_shuffle(None, x, scale_factor=0.5)  # does not use self
    assert torch.equal(pixel_unshuffle(x), theirs)


def test_not_torch_pixel_unshuffle_order():
    """Same numbers as F.pixel_unshuffle, in another channel order (which a trained mlp1 would notice)."""
    x = torch.randn(2, 4, 4, 6)
    ours = pixel_unshuffle(x)  # channel (m*2 + k)*D + d
    torchs = F.pixel_unshuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)  # channel d*4 + m*2 + k
    assert not torch.equal(ours, torchs)
    assert torch.equal(ours.sort(-1).values, torchs.sort(-1).values)
    assert torch.equal(ours, torchs.reshape(2, 2, 2, 6, 4).transpose(-1, -2).reshape(2, 2, 2, 24))


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="divisible"):
        pixel_unshuffle(torch.zeros(1, 5, 4, 8))


def test_mlp_projector_equals_transformers_projector():
    conf = pytest.importorskip("transformers.models.internvl.configuration_internvl")
    modeling = pytest.importorskip("transformers.models.internvl.modeling_internvl")
    cfg = conf.InternVLConfig(vision_config={"hidden_size": 16, "num_attention_heads": 2},
                              text_config={"model_type": "qwen2", "hidden_size": 24}, downsample_ratio=0.5)
    theirs = modeling.InternVLMultiModalProjector(cfg).eval()
    ours = MLPProjector(64, 24).eval()
    ours.load_state_dict({"norm.weight": theirs.layer_norm.weight, "norm.bias": theirs.layer_norm.bias,
                          "fc1.weight": theirs.linear_1.weight, "fc1.bias": theirs.linear_1.bias,
                          "fc2.weight": theirs.linear_2.weight, "fc2.bias": theirs.linear_2.bias})
    x = torch.randn(3, 4, 64)
    torch.testing.assert_close(ours(x), theirs(x))


def _course_visual():
    try:
        clip, _ = cc.load("course")
    except FileNotFoundError:
        clip = cc.create_model("course")
    return clip.visual.eval()


def test_patch_features_are_the_vits_own_block_outputs():
    visual = _course_visual()
    x = torch.randn(3, 3, 32, 32)
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o)) for b in visual.transformer.resblocks]
    with torch.no_grad():
        visual(x)  # the tower's own forward, recorded block by block
        for h in hooks:
            h.remove()
        for layer in (-1, -2):
            got = PatchFeatures(visual, layer)(x)
            assert got.shape == (3, 4, 4, 128)  # 32 px / patch 8 = 4x4 grid, [CLS] dropped
            torch.testing.assert_close(got, seen[layer][:, 1:].reshape(3, 4, 4, 128))
    with pytest.raises(ValueError, match="select_layer"):
        PatchFeatures(visual, 0)


def test_tile_tokens_shape_course_and_internvl_sizes():
    assert tile_tokens(torch.zeros(5, 4, 4, 128)).shape == (5, 4, 512)        # course: 16 patches -> 4 tokens
    assert tile_tokens(torch.zeros(1, 32, 32, 1024)).shape == (1, 256, 4096)  # InternViT-300M at 448 px
