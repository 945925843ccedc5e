"""Small seeded towers and inputs for the exercises of notebooks 02 (vision) and 03 (text, CLIP).

Every parameter is redrawn from a seeded generator (LayerNorm scales near 1, biases and embeddings
away from 0), because a freshly initialised tower has zero biases and unit LayerNorm scales: an answer
that forgot a bias, a LayerNorm's affine part or the positional embedding would still match it.
Sizes are chosen so that a mistake cannot hide: width != output size (a missing or transposed
projection changes the shape), more than one head (a wrong head split changes the numbers).
"""
from __future__ import annotations

import torch
from torch import nn


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Redraw every parameter of `module` in place (seeded); returns it in eval mode.

    LayerNorm scales become 1 + 0.2·noise, vectors 0.5·noise, matrices noise / sqrt(fan-in) (so that
    activations keep a sensible size through a few layers).
    """
    g = torch.Generator().manual_seed(seed)
    norm_scales = {id(m.weight) for m in module.modules() if isinstance(m, nn.LayerNorm)}
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=g)
            if id(p) in norm_scales:
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(noise * (0.5 if p.ndim <= 1 else p[0].numel() ** -0.5))
    return module.eval()


def tiny_vit(seed: int = 0, resolution: int = 12, patch: int = 4, width: int = 16, layers: int = 2,
             heads: int = 2, output_dim: int = 8) -> nn.Module:
    """A VisionTransformer with random weights: 12 px, patch 4 (9 patches), width 16, 2 heads, out 8."""
    from cnclip_edu.model.vision import VisionTransformer

    return randomize_(VisionTransformer(resolution, patch, width, layers, heads, output_dim), seed)


def images(n: int, resolution: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def tokens(lengths: list[int], length: int, seed: int = 0) -> torch.Tensor:
    """(len(lengths), length) ids: [CLS], random Chinese-vocab ids, [SEP], then [PAD] = 0 up to `length`."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), length, dtype=torch.long)
    for i, n in enumerate(lengths):  # n real tokens including [CLS] and [SEP]
        ids[i, :n] = torch.randint(672, 8000, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = 101, 102
    return ids


def tiny_clip(seed: int = 0, vocab_size: int = 8000, resolution: int = 12, patch: int = 4, width: int = 16,
              layers: int = 1, head_width: int = 8) -> nn.Module:
    """A CLIP with random weights: ViT (12 px, patch 4, width 16, 1 layer by default) + BERT (hidden 24,
    2 layers, 3 heads), embed dim 8, logit_scale drawn away from its initial value."""
    from cnclip_edu.model.clip import CLIP, CLIPConfig
    from cnclip_edu.model.text import TextConfig
    from cnclip_edu.model.vision import VisionConfig

    cfg = CLIPConfig(VisionConfig("tiny-vit", embed_dim=8, image_resolution=resolution, vision_layers=layers,
                                  vision_width=width, vision_patch_size=patch, vision_head_width=head_width),
                     TextConfig("tiny-bert", vocab_size=vocab_size, text_hidden_size=24, text_num_hidden_layers=2,
                                text_num_attention_heads=3, text_intermediate_size=48,
                                text_max_position_embeddings=16))
    torch.manual_seed(seed)
    model = randomize_(CLIP(cfg), seed)
    with torch.no_grad():
        model.logit_scale.fill_(2.0 + 0.1 * seed)  # exp(2.0) = 7.4: a forgotten exp() shows
    return model


def feature_probes(run, names: tuple[str, ...]):
    """The two probes of an encode exercise (02.5 `encode_image`, 03.4 `encode_text`) for `run(f, model, x)`,
    the answer or the reference run under its guard: -> (features, gradients), both called as (f, model, x).

    `features`: the features (B, E), computed without autograd. `gradients`: the gradients of a fixed
    weighted sum of the features w.r.t. the parameters `names` of `model` (None: none arrived there), or
    the refusal marker `run` returned. An answer computed under `torch.no_grad()` or `.detach()` gives the
    same features but no gradients."""
    def features(f, model: nn.Module, x: torch.Tensor):
        with torch.no_grad():
            return run(f, model, x)

    def gradients(f, model: nn.Module, x: torch.Tensor):
        model.zero_grad(set_to_none=True)
        out = run(f, model, x)
        if isinstance(out, dict):  # refused (the shortcut marker)
            return out
        if not torch.is_tensor(out) or not out.requires_grad:
            return [None] * len(names)
        w = torch.linspace(-1, 1, out.numel()).view(out.shape)
        (out * w).sum().backward()
        params = dict(model.named_parameters())
        grads = [None if params[n].grad is None else params[n].grad.clone() for n in names]
        model.zero_grad(set_to_none=True)
        return grads
    return features, gradients
