"""Kill-and-resume runs for exercises 06.6 (save a checkpoint atomically) and 06.7 (resume from it).

A run trains a tiny MLP (6 -> 16 -> 3, seeded) with AdamW in two parameter groups for `steps` steps:
each step's learning rate comes from the course schedule (`CosineSchedule`) at that step, and each
step's batch is drawn with torch's global RNG, as random augmentation would. Every `every` steps it
calls `save(path, model, optimizer, steps_done)`. Then it is killed, in one of two ways:

- after step `kill_after` (between two saves): the run since the last checkpoint is lost;
- while the save number `kill_in_save` is writing: `torch.save` dies halfway through its bytes, as a
  SIGKILL or a power cut would leave the file it was writing.

A "new process" (a model of another initialisation, a fresh optimizer, torch's RNG reseeded) calls
`resume(path, model, optimizer)` and trains from the step it returns to the end. What a case returns
is compared with the same run made with the library's `train.resumable` functions, which equals the
uninterrupted run bit for bit (tests/test_resumable.py); each result also says so itself.
`Killed` derives from BaseException: an answer's `except Exception` cannot swallow the kill.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from cnclip_edu.fileio import make_temp_dir, remove_stale_temporaries

N_DATA, BATCH, BASE_LR, WARMUP = 32, 8, 1e-2, 2


class Killed(BaseException):
    """The simulated SIGKILL."""


class DDPLike(nn.Module):
    """What DistributedDataParallel looks like to a save: the model under `.module`, so its state_dict's
    keys start with `module.` (a real DDP needs a process group; this is enough for a checkpoint)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """AdamW as the course builds it: matrices decay, biases don't; betas / eps of the recipe."""
    params = list(model.parameters())
    return torch.optim.AdamW([{"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
                              {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1}],
                             lr=BASE_LR, betas=(0.9, 0.98), eps=1e-6)


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(N_DATA, 6, generator=g), torch.randn(N_DATA, 3, generator=g)   # (N, 6), (N, 3)


def _train(model, optimizer, data, start: int, steps: int, every: int, save, path: Path,
           kill_after: int | None = None) -> list[float]:
    """Steps start .. steps-1; a save after every `every`-th; Killed after step `kill_after`."""
    from cnclip_edu.train.optim import CosineSchedule

    x, y = data
    schedule = CosineSchedule(BASE_LR, WARMUP, steps)
    losses = []
    for step in range(start, steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr_at(step)
        idx = torch.randint(N_DATA, (BATCH,))          # the global RNG: what a resume must restore
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        done = step + 1
        if save is not None and done % every == 0:
            save(path, model, optimizer, done)
        if done == kill_after:
            raise Killed
    return losses


@contextlib.contextmanager
def _dying_save(on_call: int | None) -> Iterator[None]:
    """torch.save dies on its `on_call`-th call (1-based) after writing half of its bytes to the
    target it was given (a path or a file object)."""
    real = torch.save
    calls = [0]

    def save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] != on_call:
            return real(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        half = buf.getvalue()[: len(buf.getvalue()) // 2]
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as out:
                out.write(half)
        else:
            f.write(half)
            f.flush()
        raise Killed

    if on_call is None:
        yield
        return
    torch.save = torch.serialization.save = save
    try:
        yield
    finally:
        torch.save = torch.serialization.save = real


def _final_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in getattr(model, "module", model).state_dict().items()}


def uninterrupted(seed: int, steps: int) -> dict[str, torch.Tensor]:
    """The run with no kill and no saves: the parameters a resumed run must end with."""
    model = _model(seed)
    optimizer = _optimizer(model)
    torch.manual_seed(seed + 1)
    _train(model, optimizer, _data(seed), 0, steps, every=1, save=None, path=Path("unused"))
    return _final_params(model)


def kill_and_resume(save: Callable, resume: Callable, seed: int = 0, steps: int = 8, every: int = 2,
                    kill_after: int | None = 5, kill_in_save: int | None = None, train_wrapped: bool = False,
                    resume_wrapped: bool = False, resume_save: Callable | None = None,
                    show_files: bool = False) -> dict:
    """Train with `save`, kill, resume with `resume` in a new "process", train to the end (saving with
    `resume_save`, default `save`) -> what happened, as plain data. show_files: also the files the kill
    left in the folder, (name, bytes) each (a notebook's demo: the names are the answer's choice)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                # a tiny model: threads only wait for each other
    rng_outside = torch.get_rng_state()
    base = Path(tempfile.gettempdir())
    remove_stale_temporaries(base, "cnclip-resume")   # what a killed checker left behind (its pid is gone)
    folder = make_temp_dir(base / "cnclip-resume")    # the project's one temp-folder helper (fileio)
    path = folder / "ckpt.pt"
    try:
        data = _data(seed)
        model = _model(seed)
        if train_wrapped:
            model = DDPLike(model)
        optimizer = _optimizer(model)
        torch.manual_seed(seed + 1)         # the run's RNG (the same as the uninterrupted run's)
        killed = False
        try:
            with _dying_save(kill_in_save):
                _train(model, optimizer, data, 0, steps, every, save, path, kill_after)
        except Killed:
            killed = True
        del model, optimizer                # the process is gone: only the file is left
        files = sorted((p.name, p.stat().st_size) for p in folder.iterdir())
        out: dict = {"训练被杀掉了": killed, "续训": "顺利", "续训从第几步接着训练": None, "续训后每一步的损失": None,
                     "检查点里的键": None, "检查点里模型参数的名字": None, "最后的参数": None,
                     "与不中断的训练逐位相同": False}
        if show_files:
            out["被杀后文件夹里的文件"] = files
        if not path.is_file():
            out["续训"] = f"磁盘上没有 {path.name}：检查点没有写到这个路径"
            return out
        # a new process: another initialisation, a fresh optimizer, a fresh RNG
        fresh = _model(seed + 777)
        if resume_wrapped:
            fresh = DDPLike(fresh)
        fresh_opt = _optimizer(fresh)
        torch.manual_seed(seed + 12_345)
        try:
            start = resume(path, fresh, fresh_opt)
        except NotImplementedError:
            raise                           # the exercise's stub: not attempted
        except Exception as exc:            # noqa: BLE001  say what went wrong, as data
            out["续训"] = f"续训时出错：{type(exc).__name__}: {str(exc)[:200]}"
            return out
        if not isinstance(start, int) or isinstance(start, bool):
            out["续训"] = f"续训返回的不是整数步数，而是 {type(start).__name__}"
            return out
        out["续训从第几步接着训练"] = start
        try:
            out["续训后每一步的损失"] = _train(fresh, fresh_opt, data, start, steps, every, resume_save or save, path)
        except NotImplementedError:
            raise
        except Exception as exc:            # noqa: BLE001
            out["续训"] = f"续训后的训练出错：{type(exc).__name__}: {str(exc)[:200]}"
            return out
        final = _final_params(fresh)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        out["检查点里的键"] = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        model_keys = ckpt.get("model") if isinstance(ckpt, dict) else None
        out["检查点里模型参数的名字"] = sorted(model_keys) if isinstance(model_keys, dict) else None
        out["最后的参数"] = final
        clean = uninterrupted(seed, steps)
        out["与不中断的训练逐位相同"] = all(torch.equal(final[k], clean[k]) for k in clean)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        torch.set_rng_state(rng_outside)
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- cases
def _public(role: str):
    """The public cases; `role` "save": the answer saves, the library resumes; "resume": the other way."""
    from cnclip_edu.train.resumable import resume_from, save_checkpoint

    from .core import Case

    def run(**kw):
        def go(f):
            if role == "save":
                return kill_and_resume(f, resume_from, **kw)
            return kill_and_resume(save_checkpoint, f, **kw)
        return go

    return [Case("8 步、每 2 步存一次；第 5 步之后被杀（上一个检查点在第 4 步），换一个新进程续训到第 8 步",
                 run(kill_after=5)),
            Case("第 4 步的检查点正写到一半时被杀（torch.save 只写了一半的字节）；上一个完整的检查点在第 2 步",
                 run(kill_after=None, kill_in_save=2)),
            Case("训练时模型包在 DDP 里（有 .module，state_dict 的键带 module.），续训时模型没有包；第 3 步之后被杀",
                 run(kill_after=3, train_wrapped=True)),
            Case("训练时模型没有包，续训时包在 DDP 里（有 .module）；每 3 步存一次，第 7 步之后被杀",
                 run(steps=9, every=3, kill_after=7, resume_wrapped=True))]


def _hidden(role: str, seed: int):
    from cnclip_edu.train.resumable import resume_from, save_checkpoint

    from .core import Case

    rng = random.Random(seed)
    every = rng.choice((2, 3))
    steps = rng.randrange(3 * every, 3 * every + 4)
    kill_after = rng.choice([k for k in range(every + 1, steps) if k % every])   # between two saves
    s = rng.randrange(1, 10_000)

    def run(**kw):
        def go(f):
            if role == "save":
                return kill_and_resume(f, resume_from, seed=s, steps=steps, every=every, **kw)
            return kill_and_resume(save_checkpoint, f, seed=s, steps=steps, every=every, **kw)
        return go

    return [Case("随机的初始化、步数、保存间隔；训练时包在 DDP 里，在两次保存之间被杀",
                 run(kill_after=kill_after, train_wrapped=True)),
            Case("随机的初始化、步数、保存间隔；第二次保存写到一半时被杀，续训时包在 DDP 里",
                 run(kill_after=None, kill_in_save=2, resume_wrapped=True))]


# ----------------------------------------------------------------------------- wrong answers
def _save_variant(atomic: bool = True, optimizer: bool = True, step_shift: int = 0, rng: bool = True,
                  unwrap: bool = True, rename: bool = True):
    """save_checkpoint with one of the usual slips."""

    def save(path, model, optimizer_, step):
        inner = getattr(model, "module", model) if unwrap else model
        state = {"model": inner.state_dict(), "step": step + step_shift}
        if optimizer:
            state["optimizer"] = optimizer_.state_dict()
        if rng:
            state["rng_state"] = torch.get_rng_state()
        path = Path(path)
        if not atomic:
            torch.save(state, path)
            return
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        if rename:
            os.replace(tmp, path)

    return save


def _resume_variant(optimizer: bool = True, rng: bool = True, shift: int = 0, unwrap: bool = True,
                    strict: bool = True, step: bool = True):
    """resume_from with one of the usual slips."""

    def resume(path, model, optimizer_):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        (getattr(model, "module", model) if unwrap else model).load_state_dict(ckpt["model"], strict=strict)
        if optimizer:
            optimizer_.load_state_dict(ckpt["optimizer"])
        if rng:
            torch.set_rng_state(ckpt["rng_state"])
        return int(ckpt["step"]) + shift if step else 0

    return resume


def save_mutants() -> dict:
    return {"直接 torch.save 到目标文件（不是原子的）：写到一半被杀，磁盘上只剩半个文件": _save_variant(atomic=False),
            "写了临时文件却忘了改名：目标文件从来没有出现": _save_variant(rename=False),
            "没有存优化器的状态：续训后 AdamW 的一阶、二阶矩从 0 重来": _save_variant(optimizer=False),
            "存的步数少了 1（存的是这一步的下标，而不是已经走完的步数）": _save_variant(step_shift=-1),
            "没有存随机数状态：续训后抽到的 batch 和不中断时不一样": _save_variant(rng=False),
            "存了 DDP 包装层的 state_dict：键带 module.，没包的模型读不进去": _save_variant(unwrap=False)}


def resume_mutants() -> dict:
    return {"没有恢复优化器的状态": _resume_variant(optimizer=False),
            "没有恢复随机数状态": _resume_variant(rng=False),
            "返回的步数多了 1：跳过了一步": _resume_variant(shift=1),
            "返回的步数少了 1：重复了一步": _resume_variant(shift=-1),
            "忘了步数：总是从第 0 步重新开始（学习率调度也从头来）": _resume_variant(step=False),
            "直接加载进 DDP 包装层：键对不上": _resume_variant(unwrap=False),
            "直接加载进 DDP 包装层，又用了 strict=False：一个权重也没加载，也不报错": _resume_variant(unwrap=False, strict=False)}
