"""cn_clip's own model as a reference: built from our configs with the same kwargs cn_clip's JSON files give,
holding our weights, or loaded strictly from a cn_clip-layout file; the numbers agree with ours."""
from __future__ import annotations

import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.model.checkpoint import save_pt
from cnclip_edu.model.cn_clip_ref import build_cn_clip, cn_clip_copy, cn_clip_from_checkpoint, cn_clip_kwargs

from test_model import PAIRINGS, cn_clip_info, tokens


@pytest.mark.parametrize("name", PAIRINGS)
def test_kwargs_are_cn_clips_merged_json_configs(name):
    # cn_clip's JSON files leave vision_head_width out where it is its default, 64 (all but ViT-H)
    assert cn_clip_kwargs(name) == {"vision_head_width": 64, **cn_clip_info(*name.split("@"))}


def _inputs():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)), tokens(2, 16)


def test_copy_holds_our_weights_and_computes_the_same():
    torch.manual_seed(0)
    ours = cc.create_model("course").eval()
    ref = cn_clip_copy(ours)
    assert not ref.training and type(ref).__module__ == "cn_clip.clip.model"
    images, toks = _inputs()
    with torch.no_grad():
        for a, b in zip(ours.get_similarity(images, toks), ref.get_similarity(images, toks)):
            assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad():  # a copy: changing ours leaves the reference as it was
        ours.logit_scale.add_(1.0)
    assert ref.logit_scale.item() == pytest.approx(ours.logit_scale.item() - 1.0)


def test_from_checkpoint_reads_our_pt_and_a_plain_cn_clip_file(tmp_path):
    torch.manual_seed(1)
    ours = cc.create_model("course").eval()
    images, toks = _inputs()
    ref = cn_clip_from_checkpoint(save_pt(ours, tmp_path / "ours.pt"))  # architecture from model_config
    with torch.no_grad():
        assert torch.allclose(ref.encode_text(toks), ours.encode_text(toks), atol=1e-5)
        assert torch.allclose(ref.encode_image(images), ours.encode_image(images), atol=1e-5)

    cn = build_cn_clip("course")  # a file as cn_clip's training writes it: no model_config, a pooler key
    sd = {f"module.{k}": v for k, v in cn.state_dict().items()}
    sd["module.bert.pooler.dense.weight"] = torch.zeros(128, 128)
    torch.save({"epoch": 1, "step": 2, "name": "x", "state_dict": sd}, tmp_path / "cn.pt")
    with pytest.raises(ValueError, match="cn.pt.*model name"):
        cn_clip_from_checkpoint(tmp_path / "cn.pt")
    again = cn_clip_from_checkpoint(tmp_path / "cn.pt", "course")
    with torch.no_grad():
        assert torch.equal(again.encode_text(toks), cn.encode_text(toks))
