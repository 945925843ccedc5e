"""Exercise 06.8 of notebook 06 (training under torchrun): the start of a finetune, the weights loaded
strictly, the vision tower frozen, only the parameters still trained given to the optimizer.

Compared with the library's `train.finetune.prepare_finetune` on a fresh tiny CLIP given another's weights
(keys as a DDP checkpoint stores them), then one step of its optimizer; and on state dicts with a key
missing or one too many, which a strict load must refuse. The mutants: keys not stripped, strict=False,
the tower frozen after the optimizer was built or not at all, weight decay on every parameter or on none,
AdamW's default betas / eps instead of the recipe's (each parameter group's hyper-parameters are compared:
one step of Adam hardly depends on them).
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 06.8 the start of a finetune
_FT_LR, _FT_WD = 1e-2, 0.5  # large enough that a missing or extra weight decay shows after one step


def _ft_reference(model, state_dict, lr, weight_decay, freeze_vision=True):
    from cnclip_edu.train.finetune import prepare_finetune

    return prepare_finetune(model, state_dict, lr, weight_decay, freeze_vision)


def _ft_batch(model, seed: int):
    import torch

    from cnclip_edu import tokenize

    g = torch.Generator().manual_seed(100 + seed)
    images = torch.randn(6, 3, model.image_resolution, model.image_resolution, generator=g)  # (B, 3, R, R)
    tokens = tokenize(["一个红色的圆形", "蓝色的正方形", "绿色的三角形", "黄色的五角星", "紫色的十字", "一个黑色的圆形"],
                      context_length=16)  # (B, L)
    return images, tokens


def _ft_case(f, freeze: bool = True, source_seed: int = 1, target_seed: int = 0, ddp_keys: bool = True) -> dict:
    """f on a fresh tiny CLIP (seed `target_seed`) with another tiny CLIP's weights (seed `source_seed`, keys as a DDP
    checkpoint stores them), then one step of its optimizer -> what the student's set-up did."""
    import torch

    from cnclip_edu.loss import ClipLoss
    from cnclip_edu.train.ddp_demo import tiny_clip
    from cnclip_edu.train.state import to_ddp_keys

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source = {k: v.clone() for k, v in tiny_clip(source_seed).state_dict().items()}
        model = tiny_clip(target_seed)
        optimizer, report = f(model, to_ddp_keys(source) if ddp_keys else dict(source), _FT_LR, _FT_WD,
                              freeze_vision=freeze)
        params = dict(model.named_parameters())
        loaded_diff = max((v - source[k]).abs().max().item() for k, v in model.state_dict().items())
        in_opt = {id(p) for group in optimizer.param_groups for p in group["params"]}
        trainable = {id(p) for p in params.values() if p.requires_grad}
        frozen_names = [n for n, p in params.items() if not p.requires_grad]
        visual_before = {n: p.detach().clone() for n, p in params.items() if n.startswith("visual.")}
        images, tokens = _ft_batch(model, target_seed)
        optimizer.zero_grad()
        ClipLoss()(*model(images, tokens)).backward()
        optimizer.step()
        visual_moved = max((params[n] - v).abs().max().item() for n, v in visual_before.items())
        groups = sorted(([float(g["weight_decay"]), len(g["params"]), [float(b) for b in g.get("betas", ())],
                          float(g.get("eps", float("nan"))), float(g["lr"])] for g in optimizer.param_groups),
                        key=lambda row: row[:2])
        return {"报告 (loaded, trainable, frozen)": [int(report[k]) for k in ("loaded", "trainable", "frozen")],
                "优化器 (类型, 每组 [weight_decay, 参数张量数, betas, eps, lr])": [type(optimizer).__name__, groups],
                "加载后与来源权重的最大差": loaded_diff,
                "requires_grad=False 的参数张量数": len(frozen_names),
                "冻结的都在视觉塔里": all(n.startswith("visual.") for n in frozen_names),
                "优化器里的参数恰好是需要梯度的那些": in_opt == trainable,
                "一步之后视觉塔移动的最大量": visual_moved,
                "一步之后的 logit_scale": params["logit_scale"].item(),
                "一步之后的 text_projection": params["text_projection"].detach().clone(),
                "一步之后的 bert.embeddings.LayerNorm.weight": params["bert.embeddings.LayerNorm.weight"].detach().clone()}
    finally:
        torch.set_num_threads(threads)


def _ft_strict_case(f, drop: str | None = "logit_scale", extra: str | None = None) -> dict:
    """f given a state dict with one key missing (or one too many): a strict load must raise."""
    from cnclip_edu.train.ddp_demo import tiny_clip
    from cnclip_edu.train.state import to_ddp_keys

    sd = to_ddp_keys(tiny_clip(1).state_dict())
    if drop:
        sd.pop("module." + drop)
    if extra:
        sd["module." + extra] = sd["module.logit_scale"].clone()
    try:
        f(tiny_clip(0), sd, _FT_LR, _FT_WD, freeze_vision=True)
    except NotImplementedError:
        raise  # the exercise's stub: not attempted
    except Exception:  # noqa: BLE001  any error will do: strict loading refuses the file
        return {"报错": True}
    return {"报错": False}


def _ft_cases():
    return [Case("小号 CLIP，另一个小号 CLIP 的权重（键带 module.），冻结视觉塔，再走一步", lambda f: _ft_case(f)),
            Case("同上，freeze_vision=False", lambda f: _ft_case(f, freeze=False)),
            Case("权重里少了 logit_scale：严格加载应当报错", lambda f: _ft_strict_case(f)),
            Case("权重里多了一个模型没有的键：严格加载应当报错",
                 lambda f: _ft_strict_case(f, drop=None, extra="visual.not_a_parameter"))]


def _ft_hidden(seed: int):
    import random

    rng = random.Random(seed)
    src, dst = rng.randrange(1, 10_000), rng.randrange(10_001, 20_000)
    dropped = rng.choice(("text_projection", "visual.proj", "bert.embeddings.word_embeddings.weight"))
    return [Case("另一对随机初始化，冻结视觉塔，再走一步", lambda f: _ft_case(f, source_seed=src, target_seed=dst)),
            Case("键不带 module. 前缀（普通 state_dict），不冻结",
                 lambda f: _ft_case(f, freeze=False, source_seed=src, target_seed=dst, ddp_keys=False)),
            Case("权重里少了一个键", lambda f: _ft_strict_case(f, drop=dropped))]


def _ft_variant(strip: bool = True, strict: bool = True, freeze: str = "before_optimizer", decay: str = "split",
                betas: str = "recipe"):
    """prepare_finetune with one of the usual slips: keys not stripped; strict=False; the tower frozen after
    the optimizer was built ("after_optimizer") or not at all ("never"); weight decay on every parameter
    ("all") or on none ("none")."""
    import torch

    def prepare(model, state_dict, lr, weight_decay, freeze_vision=True):
        sd = {(k[len("module."):] if strip and k.startswith("module.") else k): v for k, v in state_dict.items()}
        model.load_state_dict(sd, strict=strict)

        def build():
            decayed, plain = [], []
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                wants = {"split": p.ndim >= 2 and "logit_scale" not in name, "all": True, "none": False}[decay]
                (decayed if wants else plain).append(p)
            if betas == "default":   # AdamW's own betas=(0.9, 0.999), eps=1e-8, not the recipe's
                return torch.optim.AdamW([{"params": plain, "weight_decay": 0.0},
                                          {"params": decayed, "weight_decay": weight_decay}], lr=lr)
            return torch.optim.AdamW([{"params": plain, "weight_decay": 0.0},
                                      {"params": decayed, "weight_decay": weight_decay}],
                                     lr=lr, betas=(0.9, 0.98), eps=1e-6)

        if freeze == "after_optimizer":
            optimizer = build()
        if freeze_vision and freeze != "never":
            model.visual.requires_grad_(False)
        if freeze != "after_optimizer":
            optimizer = build()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        return optimizer, {"loaded": len(sd), "trainable": trainable, "frozen": frozen}

    return prepare


def _ft_mutants():
    return {"没有去掉 module. 前缀（严格加载报错）": _ft_variant(strip=False),
            "没有去掉 module. 前缀，又用了 strict=False：一个权重也没加载，也不报错": _ft_variant(strip=False, strict=False),
            "strict=False：少了键或多了键都不报错": _ft_variant(strict=False),
            "先建优化器、后冻结：优化器里还有冻结的参数": _ft_variant(freeze="after_optimizer"),
            "忘了冻结视觉塔": _ft_variant(freeze="never"),
            "对所有参数都做权重衰减（包括 LayerNorm 增益和 logit_scale）": _ft_variant(decay="all"),
            "完全没有权重衰减": _ft_variant(decay="none"),
            "AdamW 用了默认的 betas=(0.9, 0.999)、eps=1e-8，不是课程配方的 (0.9, 0.98)、1e-6": _ft_variant(betas="default")}


register(Exercise(
    id="06.8", title="微调的起点：只加载权重 + 冻结视觉塔 + 只优化还要训练的参数", points=4,
    hint="DDP 存下的键比模型自己的参数名多一个前缀；加载要严格，对不上的键必须报错而不是被悄悄跳过；"
         "冻结一个塔就是让它的参数不再需要梯度，而优化器只应该拿到还需要梯度的参数——想想冻结和建优化器谁先谁后；"
         "权重衰减只给矩阵，一维的增益、偏置和 logit_scale 不衰减（与第 3 部分 build_optimizer 的规则相同）。",
    reference=_ft_reference, cases=_ft_cases, mutants=_ft_mutants, hidden=_ft_hidden,
    builds=("cnclip_edu.train.finetune.prepare_finetune", "cnclip_edu.train.state.from_ddp_keys",
            "cnclip_edu.train.optim.param_groups", "cnclip_edu.train.resume.load_weights_only")))
