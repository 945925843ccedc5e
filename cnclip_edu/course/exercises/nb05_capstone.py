"""Exercise 05.4 of notebook 05, the capstone: the student's own tokenizer, towers, loss and Dataset in one
training step (`capstone.py`).

The reference step runs on the library's pieces, the student's on the student's own `%%my_clip` cells;
the mutants are the slips of a training step: features not normalized, `logit_scale` not exp'd, stale
gradients, no backward, the library's tokenizer, a shuffled batch, towers under `torch.no_grad()`.
"""
from __future__ import annotations

from .core import Case, Exercise, register
from .tripwire import guarded


# ----------------------------------------------------------------------------- 05.4 the capstone
def _capstone_step(mine, model, lmdb_split_dir, batch_size):
    from cnclip_edu.course.capstone import training_step

    return training_step(mine, model, lmdb_split_dir, batch_size)


def _run_capstone(f, seed: int, batch_size: int, stale_grads: bool = False):
    """The reference step runs on the library's pieces, the student's step on the student's own
    (`%%my_clip` cells of this work folder; the library's where a notebook has not run)."""
    from cnclip_edu.course import capstone

    if f is _capstone_step:
        return capstone.run_step(f, capstone.library_pieces(), seed, batch_size, stale_grads)
    return capstone.run_step(guarded(f, _capstone_step, ("cnclip_edu.course.capstone.training_step",)),
                             capstone.collect()[0], seed, batch_size, stale_grads)


def _cases_05_4():
    return [Case("玩具世界的前 8 个图文对", lambda f: _run_capstone(f, 0, 8)),
            Case("另一批（4 对），模型的 .grad 里还留着上一步的梯度", lambda f: _run_capstone(f, 1, 4, stale_grads=True))]


def _hidden_05_4(seed: int):
    import random

    rng = random.Random(seed)
    return [Case("另一份玩具数据、另一个批大小", lambda f, s=rng.randrange(10**6), b=rng.randint(3, 8): _run_capstone(f, s, b)),
            Case(".grad 里留着上一步的梯度", lambda f, s=rng.randrange(10**6): _run_capstone(f, s, 5, stale_grads=True))]


def _mutants_05_4():
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from cnclip_edu.tokenizer import VOCAB_PATH, tokenize

    def step(normalize=True, exp=True, zero=True, backward=True, own_tokenizer=True, shuffle=False, no_grad=False):
        def run(mine, model, root, batch_size):
            vocab = mine.load_vocab(VOCAB_PATH)
            tok = (lambda texts, context_length: mine.tokenize(texts, vocab, context_length)) if own_tokenizer else None
            ds = mine.MyLMDBDataset(root, model.image_resolution, context_length=model.context_length, tokenizer=tok)
            images, tokens = next(iter(DataLoader(ds, batch_size=batch_size, shuffle=shuffle)))
            if zero:
                model.zero_grad()
            with torch.no_grad() if no_grad else torch.enable_grad():
                img, txt = mine.encode_image(model, images), mine.encode_text(model, tokens)
            if normalize:
                img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
            loss = mine.clip_loss(img, txt, model.logit_scale.exp() if exp else model.logit_scale)
            if backward and loss.requires_grad:
                loss.backward()
            return loss
        return run

    del tokenize
    return {"特征没有 L2 归一化": step(normalize=False), "logit_scale 没有取 exp": step(exp=False),
            "没有先把梯度清零": step(zero=False), "没有 backward": step(backward=False),
            "Dataset 用了库里的分词器，而不是你在 01 写的 tokenize": step(own_tokenizer=False),
            "DataLoader 打乱了顺序（shuffle=True）：和库比较的不是同一批": step(shuffle=True),
            "两个塔在 torch.no_grad() 里前向（梯度传不到塔里）": step(no_grad=True)}


register(Exercise(
    id="05.4", title="终点：用你自己的零件跑一步 CLIP 训练", points=4,
    hint="每一步都用 mine 里的零件：词表和分词器（01）、Dataset（05，把你的分词器交给它）、两个塔（02、03）、损失（04）。"
         "想一想：损失要的特征是什么样的（04 说过），logit_scale 在模型里存的是什么，.grad 里原来可能有什么，"
         "以及要和库比较的是不是同一批样本。如果提示说某个零件不一致，回到那个 notebook 去改。",
    reference=_capstone_step, cases=_cases_05_4, mutants=_mutants_05_4, hidden=_hidden_05_4, needs=("04.1", "05.3"),
    builds=("cnclip_edu.model.clip.CLIP.encode_image", "cnclip_edu.model.clip.CLIP.encode_text",
            "cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.data.dataset.LMDBDataset.__getitem__",
            "cnclip_edu.tokenizer.tokenize", "cnclip_edu.course.capstone.training_step")))
