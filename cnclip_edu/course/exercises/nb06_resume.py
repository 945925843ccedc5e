"""Exercises 06.6 and 06.7 of notebook 06 (training under torchrun): a checkpoint saved atomically, and a
resume that continues a killed run exactly as if it had never stopped.

Each is checked by kill-and-resume: a tiny run is killed between two saves, or while a save is writing,
and a new "process" continues from the file to the end; its parameters must equal the library's run
(which equals the uninterrupted one bit for bit). 06.6 saves with the answer and resumes with the library's
`train.resumable.resume_from`; 06.7 the other way round. Runs, cases and mutants: resume_cases.py.
"""
from __future__ import annotations

from .core import Exercise, register


def _save_reference(path, model, optimizer, step):
    from cnclip_edu.train.resumable import save_checkpoint

    save_checkpoint(path, model, optimizer, step)


def _resume_reference(path, model, optimizer):
    from cnclip_edu.train.resumable import resume_from

    return resume_from(path, model, optimizer)


def _cases(role: str):
    def cases():
        from . import resume_cases

        return resume_cases._public(role)
    return cases


def _hidden(role: str):
    def hidden(seed: int):
        from . import resume_cases

        return resume_cases._hidden(role, seed)
    return hidden


def _save_mutants():
    from . import resume_cases

    return resume_cases.save_mutants()


def _resume_mutants():
    from . import resume_cases

    return resume_cases.resume_mutants()


register(Exercise(
    id="06.6", title="原子地保存检查点：模型、优化器、步数和随机数状态，先写临时文件再改名", points=3,
    hint="续训要让新进程的下一步和不中断时的那一步完全一样：想想这一步用到了哪些会变的东西"
         "（参数、AdamW 的矩、学习率所在的步、抽 batch 用的随机数）。写文件时进程随时可能被杀：目标文件在任何时刻都应当是一个完整的检查点。"
         "DDP 包装过的模型，要存的是里面那个模型。",
    reference=_save_reference, cases=_cases("save"), mutants=_save_mutants, hidden=_hidden("save"),
    builds=("cnclip_edu.train.resumable.save_checkpoint", "cnclip_edu.train.state.atomic_torch_save",
            "cnclip_edu.fileio.atomic_write", "cnclip_edu.fileio.atomic_open")))

register(Exercise(
    id="06.7", title="断点续训：把检查点装回新进程，从下一步接着训练", points=3,
    hint="新进程里的模型、优化器和随机数都是新的：检查点里存下的每一样都要装回去；"
         "返回的是接下来要走的那一步的下标——存的是已经走完的步数，想想两者差不差 1。"
         "DDP 包装过的模型，参数名多一个前缀：装进里面那个模型。",
    reference=_resume_reference, cases=_cases("resume"), mutants=_resume_mutants, hidden=_hidden("resume"),
    builds=("cnclip_edu.train.resumable.resume_from", "cnclip_edu.train.state.restore_rng_state",
            "cnclip_edu.train.resume.restore_training_state")))
