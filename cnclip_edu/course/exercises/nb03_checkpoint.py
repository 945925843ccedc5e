"""Exercises 03.6 and 03.7 of notebook 03 (an official cn_clip checkpoint): the key mapping and the strict load.

The answers run on cn_clip-layout files written on the fly from a tiny model (`official_layout`:
`{"state_dict": {"module.…": …}}`, the unused `bert.pooler.*` included, optionally the FlashAttention
names of a flash model's in-memory state_dict: cn_clip's training script converts them back before
saving, a hand-saved file keeps them) and are compared with the library's loader
(`checkpoint.normalize_keys`, `read_checkpoint` + `load_weights`); 03.7 gets both the wrapped dict and a
bare state_dict (a hand-written `torch.save(model.state_dict())`), and also a file whose
unpickling would run code (`_Payload`), which a safe loader refuses, and a run that reads the arguments
its `torch.load` / `load_state_dict` were given (`_record_loads`; both in load_probes.py). Both exercises
have grading cases drawn from a seed (`hidden`) and name the library routines they build (`builds`, guards.py).
"""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

import torch

from cnclip_edu.model.checkpoint import load_weights, normalize_keys, read_checkpoint
from cnclip_edu.model.clip import CLIP

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .load_probes import _Payload, _record_loads
from .nb03_text_tower import _LENGTHS
from .towers import images, tiny_clip, tokens

_CKPT = "cnclip_edu.model.checkpoint."


# ----------------------------------------------------------------------------- official checkpoints
def official_layout(model, prefix: str = "module.", pooler: bool = True, flash: bool = False,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """`model`'s weights as cn_clip saves them: `prefix` (DDP's `module.`) on every key, BERT's unused
    pooler (dense H x H + bias) added, and with `flash` the parameter names of cn_clip's FlashAttention
    build (ViT `attn.Wqkv.*`; BERT `attention.self.Wqkv.*` = q, k, v stacked, `attention.self.out_proj.*`)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if flash:
        for k in [k for k in sd if ".attn.in_proj_" in k]:
            sd[k.replace(".attn.in_proj_", ".attn.Wqkv.")] = sd.pop(k)
        i = 0
        while f"bert.encoder.layer.{i}.attention.self.query.weight" in sd:
            p = f"bert.encoder.layer.{i}.attention"
            for kind in ("weight", "bias"):
                sd[f"{p}.self.Wqkv.{kind}"] = torch.cat([sd.pop(f"{p}.self.{n}.{kind}") for n in ("query", "key", "value")])
                sd[f"{p}.self.out_proj.{kind}"] = sd.pop(f"{p}.output.dense.{kind}")
            i += 1
    if pooler:
        H = sd["bert.embeddings.word_embeddings.weight"].shape[1]
        g = torch.Generator().manual_seed(seed)
        sd["bert.pooler.dense.weight"] = torch.randn(H, H, generator=g)
        sd["bert.pooler.dense.bias"] = torch.randn(H, generator=g)
    return {prefix + k: v for k, v in sd.items()}


# ----------------------------------------------------------------------------- 03.6 the key mapping
def _convert(sd, strip="prefix", pooler="drop", pooler_before_strip=False, flash=True, chunk_dim=0,
             rename_out=True, bert_like_vit=False):
    """A key mapping with one step done differently (for the mutants)."""
    first = next(iter(sd))
    out = {}
    for k, v in sd.items():
        if pooler_before_strip and k.startswith("bert.pooler."):
            continue
        if strip == "prefix":
            k = k[len("module."):] if k.startswith("module.") else k
        elif strip == "anywhere":
            k = k.replace("module.", "")
        elif strip == "always":
            k = k[len("module."):]
        elif strip == "cn_clip" and first.startswith("module"):  # cn_clip's own loader: only for DDP files
            if "bert.pooler" in k:
                continue
            k = k[len("module."):]
        if pooler == "drop" and not pooler_before_strip and k.startswith("bert.pooler."):
            continue
        if flash and (".attn.Wqkv." in k or bert_like_vit and ".Wqkv." in k):
            k = k.replace(".Wqkv.", ".in_proj_")
        out[k] = v
    for k in [k for k in out if flash and ".attention.self.Wqkv." in k]:
        prefix, kind = k.split(".attention.self.Wqkv.")
        for part, t in zip(("query", "key", "value"), out.pop(k).chunk(3, dim=chunk_dim if kind == "weight" else 0)):
            out[f"{prefix}.attention.self.{part}.{kind}"] = t
        if rename_out:
            out[f"{prefix}.attention.output.dense.{kind}"] = out.pop(f"{prefix}.attention.self.out_proj.{kind}")
    return out


_MAP_BUILDS = (_CKPT + "normalize_keys", _CKPT + "read_checkpoint", _CKPT + "load_state_dict_any",
               "cnclip_edu.model.hf_convert.hf_to_ours")
_map_run = guarded(normalize_keys, _MAP_BUILDS)


def _map_case(label, make):
    return Case(label, lambda f: _map_run(f, make()))


def _with_inner_module(seed):
    sd = official_layout(tiny_clip(seed=seed), seed=seed)
    sd["module.visual.adapter.module.weight"] = torch.ones(2)  # a submodule that is itself called `module`
    return sd


def _map_cases():
    return [_map_case("cn_clip 训练保存的检查点：module. 前缀 + bert.pooler", lambda: official_layout(tiny_clip(seed=41), seed=1)),
            _map_case("单卡保存的检查点：没有 module. 前缀，但有 bert.pooler",
                      lambda: official_layout(tiny_clip(seed=42), prefix="", seed=2)),
            _map_case("从 FlashAttention 模型手动保存的 state_dict：Wqkv / out_proj 的参数名",
                      lambda: official_layout(tiny_clip(seed=43), flash=True, seed=3)),
            _map_case("参数名中间也出现 module.（有个子模块就叫 module）：只能去掉开头的前缀",
                      lambda: _with_inner_module(44))]


def _map_hidden(seed: int):
    rng = random.Random(seed)
    prefix, flash, pooler = rng.choice(["module.", ""]), rng.random() < 0.5, rng.random() < 0.8

    def make():
        sd = official_layout(tiny_clip(seed=seed), prefix=prefix, pooler=pooler, flash=flash, seed=seed)
        sd[f"{prefix}visual.adapter.module.weight"] = torch.ones(2)  # a submodule called `module`
        return sd
    return [_map_case("随机的 cn_clip 检查点布局", make)]


register(Exercise(
    id="03.6", title="官方检查点的参数名 → 我们的参数名", points=4,
    hint="DDP 的前缀只在参数名的开头；文件里有一组参数 CLIP 根本不用；FlashAttention 版把 BERT 的 q、k、v 叠成了一个矩阵"
         "（按第 0 维、按 q、k、v 的顺序），注意力的输出层也换了名字，ViT 只换了名字；不认识的参数名原样保留。",
    reference=normalize_keys,
    cases=_map_cases, hidden=_map_hidden, builds=_MAP_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了丢掉 bert.pooler.*": lambda sd: _convert(sd, pooler="keep"),
        "用 replace 去掉所有的 module.，不只是开头的": lambda sd: _convert(sd, strip="anywhere"),
        "照抄 cn_clip 的加载代码：只有 DDP 文件才去前缀、丢 pooler": lambda sd: _convert(sd, strip="cn_clip", pooler="keep"),
        "先判断 bert.pooler，后去掉前缀（DDP 文件里的 pooler 漏掉了）": lambda sd: _convert(sd, pooler_before_strip=True),
        "不管有没有前缀，都切掉前 7 个字符": lambda sd: _convert(sd, strip="always"),
        "没有处理 FlashAttention 的参数名": lambda sd: _convert(sd, flash=False),
        "BERT 的 Wqkv 沿第 1 维切开": lambda sd: _convert(sd, chunk_dim=1),
        "忘了把 attention.self.out_proj 改名成 attention.output.dense": lambda sd: _convert(sd, rename_out=False),
        "BERT 的 Wqkv 也当成 ViT 的 in_proj 改名": lambda sd: _convert(sd, bert_like_vit=True),
        "直接调用库里的 normalize_keys": lambda sd: normalize_keys(sd),
    }))


# ----------------------------------------------------------------------------- 03.7 the strict load
def _library_load(model, path):
    """The library's loader on an existing model: read + map the keys, then a strict load."""
    return load_weights(model, read_checkpoint(path)[0], source=path)


_LOAD_BUILDS = (_CKPT + "read_checkpoint", _CKPT + "load_weights", _CKPT + "load_state_dict_any", _CKPT + "load",
                "cnclip_edu.model.cn_clip_ref.cn_clip_from_checkpoint")
_load_run = guarded(_library_load, _LOAD_BUILDS)


def _write(folder: str, state_dict: dict, bare: bool = False) -> Path:
    """A checkpoint file: cn_clip's wrapped dict, or (`bare`) the state_dict alone, as a hand-written
    `torch.save(model.state_dict(), path)` leaves it."""
    path = Path(folder) / "clip_cn_tiny.pt"
    torch.save(state_dict if bare else {"epoch": 3, "step": 120, "name": "tiny", "state_dict": state_dict}, path)
    return path


def _load_features(f, source_seed, target_seed, bare=False, **layout):
    """Load a cn_clip-layout file of one tiny CLIP into another (other weights); -> its features."""
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, official_layout(tiny_clip(seed=source_seed), seed=source_seed, **layout), bare=bare)
        model = _load_run(f, tiny_clip(seed=target_seed), path)
    if isinstance(model, dict):  # refused (the shortcut marker)
        return model
    if not isinstance(model, CLIP):
        return f"函数返回的不是模型，而是 {type(model).__name__}"
    with torch.no_grad():
        return [model.encode_image(images(2, 12, seed=5)), model.encode_text(tokens(_LENGTHS, 12, seed=6))]


def _load_refused(f, change):
    """Whether loading a file that does not fit the model raises (it must: strict)."""
    with tempfile.TemporaryDirectory() as d:
        sd = official_layout(tiny_clip(seed=51), seed=51)
        change(sd)
        path = _write(d, sd)
        try:
            out = _load_run(f, tiny_clip(seed=52), path)
        except Exception:
            return "报错"
    return out if isinstance(out, dict) else "没有报错"


def _drop(key):
    return lambda sd: sd.pop(key)


def _load_malicious(f, where="top"):
    """Load a checkpoint that hides code (a pickled `_Payload`) next to valid weights: it must raise
    before running it. -> "报错" / "执行了文件里的代码" / "没有报错"."""
    with tempfile.TemporaryDirectory() as d:
        marker = Path(d) / "payload_ran"
        sd = official_layout(tiny_clip(seed=57), seed=57)
        obj = {"epoch": 3, "step": 120, "name": "tiny", "state_dict": sd}
        if where == "top":
            obj["extra"] = _Payload(str(marker))    # a top-level entry the loader never looks at
        else:
            obj["name"] = _Payload(str(marker))     # hidden where a string should be
        path = Path(d) / "clip_cn_tiny.pt"
        torch.save(obj, path)
        try:
            out = _load_run(f, tiny_clip(seed=58), path)
        except Exception:
            return "执行了文件里的代码" if marker.exists() else "报错"
        if isinstance(out, dict):  # refused (the shortcut marker)
            return out
        return "执行了文件里的代码" if marker.exists() else "没有报错"


def _explicit_arguments(f):
    """Load a good file under `_record_loads`; -> "明确写出了…" or what was left to a default (in Chinese).

    Not guarded: a call into the library loader is refused by the other cases; this one only reads
    the arguments (the library's own loader writes all three out)."""
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, official_layout(tiny_clip(seed=59), seed=59))
        with _record_loads() as seen:
            f(tiny_clip(seed=60), path)
    problems = []
    if not seen["load"]:
        problems.append("没有用 torch.load 读文件")
    elif any(w is not True for w, _ in seen["load"]):
        problems.append(f"torch.load 没有写 weights_only=True（这台机器上的 torch {torch.__version__.split('+')[0]} "
                        "不写时默认是 True，所以碰巧安全；但 torch 2.6 之前默认是 False，同一行代码在那些版本上"
                        "会执行文件里藏着的代码。安全不能靠默认值，要明确写出来）")
    if seen["load"] and any(m is None for _, m in seen["load"]):
        problems.append("torch.load 没有写 map_location（在 GPU 上存的文件，到了没有 GPU 的机器上就读不出来）")
    if not seen["strict"]:
        problems.append("没有用 load_state_dict 装进模型")
    elif any(s is not True for s in seen["strict"]):
        problems.append("load_state_dict 没有明确写 strict=True（要把“名字对不上就报错”写在代码里，"
                        "读代码的人不用去记默认值）")
    return "；".join(problems) if problems else "weights_only=True、map_location、strict=True 都明确写出来了"


def _load_cases():
    return [Case("cn_clip 格式的文件（module. + bert.pooler）装进另一个随机模型", lambda f: _load_features(f, 53, 54)),
            Case("FlashAttention 参数名的文件", lambda f: _load_features(f, 55, 56, flash=True)),
            Case("没有包一层的文件：整个文件就是 state_dict（手动 torch.save(model.state_dict()) 存的）",
                 lambda f: _load_features(f, 61, 62, bare=True, prefix="")),
            Case("文件里缺了 text_projection：必须报错，不能悄悄留着随机初始化的值",
                 lambda f: _load_refused(f, _drop("module.text_projection"))),
            Case("文件里多了一个模型没有的参数：必须报错",
                 lambda f: _load_refused(f, lambda sd: sd.update({"module.visual.extra_head.weight": torch.ones(3)}))),
            Case("文件里藏着读取时会执行的代码（pickle 里的任意对象）：必须拒绝，不能执行它",
                 lambda f: _load_malicious(f)),
            Case("安全和严格要明确写在代码里：weights_only=True、map_location、strict=True，不依赖默认值",
                 _explicit_arguments)]


def _load_hidden(seed: int):
    rng = random.Random(seed)
    prefix, flash, bare = rng.choice(["module.", ""]), rng.random() < 0.5, rng.random() < 0.5
    gone = rng.choice(["module.logit_scale", "module.visual.ln_post.bias", "module.bert.embeddings.LayerNorm.weight"])
    where = rng.choice(["top", "name"])
    return [Case("随机布局的 cn_clip 文件", lambda f: _load_features(f, seed, seed + 1, prefix=prefix, flash=flash)),
            Case("随机布局、没有包一层的文件", lambda f: _load_features(f, seed + 2, seed + 3, bare=True,
                                                                   prefix=prefix, flash=not flash)),
            Case("缺了一个参数的文件：必须报错", lambda f: _load_refused(f, _drop(gone))),
            Case("藏着代码的文件：必须拒绝", lambda f: _load_malicious(f, where=where)),
            Case("明确写出的参数", _explicit_arguments)]


_DEFAULT = object()   # a _loader argument left out of the call (the function's default applies)


def _loader(strict=True, take_state_dict="if_wrapped", returns=True, map_keys=True, weights_only=True,
            map_location="cpu"):
    """A student-style 03.7 with one choice done differently (for the mutants); take_state_dict:
    "if_wrapped" (right), True (always obj["state_dict"]) or False (never)."""
    def load(model, path):
        kwargs = {k: v for k, v in (("map_location", map_location), ("weights_only", weights_only)) if v is not _DEFAULT}
        obj = torch.load(path, **kwargs)
        wrapped = "state_dict" in obj if take_state_dict == "if_wrapped" else take_state_dict
        sd = obj["state_dict"] if wrapped else obj
        sd = normalize_keys(sd) if map_keys else sd
        model.load_state_dict(sd) if strict is _DEFAULT else model.load_state_dict(sd, strict=strict)
        return model if returns else None
    return load


register(Exercise(
    id="03.7", title="安全、严格地加载 cn_clip 的检查点", points=2,
    hint="读文件时只许读出张量和普通容器，要明确写出来，不依赖 torch 版本的默认值；"
         "文件可能是包了一层的 checkpoint 字典（除了权重还有 epoch、step 这些），也可能整个就是权重字典，两种都要认；参数名先用你的 03.6 转换；加载要让“缺了或多了参数”变成一个错误，"
         "而不是一句被忽略的提示；函数最后把模型交回去。",
    reference=_library_load, needs=("03.6",),
    cases=_load_cases, hidden=_load_hidden, builds=_LOAD_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "strict=False：缺了参数也不报错": _loader(strict=False),
        "没有取出 checkpoint['state_dict']": _loader(take_state_dict=False),
        "总是取 checkpoint['state_dict']：没有包一层的文件读不了": _loader(take_state_dict=True),
        "忘了 return model": _loader(returns=False),
        "weights_only=False：读文件时执行了文件里的代码": _loader(weights_only=False),
        "torch.load(path)：weights_only 和 map_location 都靠默认值": _loader(weights_only=_DEFAULT, map_location=_DEFAULT),
        "没写 weights_only（torch 2.6 之前的默认值会执行文件里的代码）": _loader(weights_only=_DEFAULT),
        "没写 map_location": _loader(map_location=_DEFAULT),
        "load_state_dict(sd)：strict 靠默认值": _loader(strict=_DEFAULT),
        "没有转换参数名，用 strict=False 硬装": _loader(strict=False, map_keys=False),
        "直接调用库里的 read_checkpoint + load_weights": lambda m, path: _library_load(m, path),
    }))
