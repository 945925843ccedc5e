"""Where does notebook 11's chat model look when it answers about one of several shapes? Attention mass per layer.

    OMP_NUM_THREADS=1 python bench/bench_mllm_binding.py '{}' --seeds 0 --save runs/base   # a trained model
    OMP_NUM_THREADS=1 python bench/bench_mllm_attention.py runs/base-seed0.pt '{}' --seed 0

For every seen test question about one shape (颜色, 形状, 大小, 位置) on a canvas with 2-3 shapes, the position that
predicts the first answer token attends, in each layer, to: the asked shape's tile (its 4 image tokens), each other
tile (mean over them), the thumbnail, and the text. Printed per layer as the mean over heads and for the head that
separates the asked tile most from the other shapes' tiles; split by right and wrong replies. If the asked tile gets no more than another tile,
the decoder does not look up the shape the question names: the binding fails in the attention, not in the image tokens.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

import cnclip_edu as cc
from cnclip_edu.mllm import evaluate, recipe
from cnclip_edu.mllm.batches import prompt_batch
from cnclip_edu.mllm.decoder import apply_rope, attention_mask, positions_from_mask, rope_tables
from cnclip_edu.mllm.world import Canvas, Sample

sys.path.insert(0, str(Path(__file__).parent))
from bench_mllm_binding import override  # noqa: E402


def asked_cell(s: Sample, cv: Canvas) -> int:
    """The cell of the shape a one-shape question names (by colour, shape or position)."""
    q = s.turns[0][0]
    for it in cv.items:
        if it.color in q or it.shape in q or f"{cv.position(it)}的" in q:
            return it.cell
    raise ValueError(f"no shape of the canvas is named in {q!r}")


@torch.no_grad()
def attention_maps(model, ids: torch.Tensor, valid: torch.Tensor, feats: torch.Tensor) -> list[torch.Tensor]:
    """Per layer, the attention probabilities (B, H, L, L) of a left-padded batch (recomputed from q and k)."""
    dec = model.decoder
    x = model.embed_inputs(ids, feats)
    pos = positions_from_mask(valid)
    cos, sin = rope_tables(pos, dec.cfg.width // dec.cfg.heads, dec.cfg.rope_base)
    mask = attention_mask(valid, valid)
    out = []
    for block in dec.blocks:
        h = block.attn_norm(x)
        B, L, D = h.shape
        q, k, _ = block.attn.qkv(h).view(B, L, 3, block.attn.heads, D // block.attn.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        out.append(F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1))
        x = block(x, cos, sin, mask)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("state_dict")
    ap.add_argument("changes", nargs="?", default="{}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip, preprocess = cc.load("course")
    cfg = override(recipe.RecipeConfig(seed=args.seed), json.loads(args.changes))
    world = recipe.make_world(cfg)
    model, _ = recipe.build_model(cfg, world, clip.visual, preprocess)
    model.load_state_dict(torch.load(args.state_dict, weights_only=True))
    model.eval()
    bank = recipe.eval_bank(model, world, preprocess, cfg)
    bank.cache_features(model)
    qs = [s for s in world.test_questions if s.qtypes[0] in evaluate.ONE_SHAPE_QTYPES
          and len(world.test_canvases[s.canvas].items) >= 2]
    replies = evaluate.ask_single(model, bank, qs)
    tpt = model.tokens_per_tile
    acc: dict[tuple, list[float]] = defaultdict(list)   # (right?, layer, what) -> values
    for s, r in zip(qs, replies):
        cv = world.test_canvases[s.canvas]
        b = prompt_batch([(s.canvas, [(s.turns[0][0], None)])], bank, model.vocab, tpt)
        maps = attention_maps(model, b.ids, b.valid, bank.feats(model, b.images))
        slots = (b.ids[0] == model.img_context).nonzero().flatten()
        tiles = [slots[t * tpt:(t + 1) * tpt] for t in range(len(slots) // tpt)]   # cells, then the thumbnail
        cell = asked_cell(s, cv)
        others = [t for t in range(cv.cells) if t != cell]
        full = [t for t in others if any(it.cell == t for it in cv.items)]
        ok = r == s.turns[0][1]
        for li, a in enumerate(maps):
            row = a[0, :, -1]                                  # (H, L): from the last prompt token
            asked = row[:, tiles[cell]].sum(-1)               # (H,)
            other = torch.stack([row[:, tiles[t]].sum(-1) for t in full]).mean(0)   # other shapes' tiles, mean
            thumb = row[:, tiles[-1]].sum(-1)
            text = 1 - row[:, slots].sum(-1)
            for name, v in (("asked", asked), ("other_shape", other), ("thumb", thumb), ("text", text)):
                acc[(ok, li, name)].append(v)
    n_layers = len(model.decoder.blocks)
    res = {"state_dict": args.state_dict, "questions": len(qs), "right": sum(r == s.turns[0][1] for s, r in zip(qs, replies))}
    for ok in (True, False):
        for li in range(n_layers):
            m = {name: torch.stack(acc[(ok, li, name)]).mean(0) for name in ("asked", "other_shape", "thumb", "text")
                 if acc[(ok, li, name)]}
            if not m:
                continue
            h = int((m["asked"] - m["other_shape"]).argmax())   # the head that separates the asked tile most
            for how, pick in (("heads mean", lambda v: v.mean()), (f"head {h}", lambda v: v[h])):
                key = f"{'right' if ok else 'wrong'} L{li} {how}"
                res[key] = {name: round(float(pick(v)), 3) for name, v in m.items()}
                print(key, res[key], flush=True)
    print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()
