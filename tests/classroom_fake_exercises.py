"""Test-only exercises for the classroom tests (grader, nbval run): imported by the synthetic notebooks'
kernels, which find this folder on PYTHONPATH; the tests register the same ones in their own process
(`register_all`) and remove them afterwards (`unregister_all`).

96.1 has hidden cases (large numbers, drawn from the seed) and builds `library_square`, this module's
stand-in for a library routine: an answer that calls it trips the grader's wire."""
import random

from cnclip_edu.course.exercises import Case, Exercise, all_ids, core, register


def library_square(x):
    """The 'library' routine exercise 96.1 builds."""
    return x * x


def _hidden_squares(seed: int):
    rng = random.Random(seed)
    return [Case("很大的数", lambda f, x=rng.randint(1000, 10 ** 6): f(x)),
            Case("很大的负数", lambda f, x=-rng.randint(1000, 10 ** 6): f(x))]


EXERCISES = [
    Exercise("96.1", "平方", 2, "逐元素相乘。", reference=lambda x: x * x,
             cases=lambda: [Case("3", lambda f: f(3)), Case("-2", lambda f: f(-2))],
             mutants=lambda: {"加倍": lambda x: 2 * x}, hidden=_hidden_squares,
             builds=("classroom_fake_exercises.library_square",)),
    Exercise("96.q1", "补丁数", 1, "(224 / 16) 的平方。", reference=196, mutants=lambda: {"忘了平方": 14}),
    Exercise("97.1", "取反", 3, "乘以 -1。", reference=lambda x: -x,
             cases=lambda: [Case("5", lambda f: f(5))], mutants=lambda: {"原样返回": lambda x: x}),
]


def register_all() -> None:
    all_ids()  # the real ones first
    for ex in EXERCISES:
        if ex.id not in core._REGISTRY:
            register(ex)


def unregister_all() -> None:
    for ex in EXERCISES:
        core._REGISTRY.pop(ex.id, None)


register_all()
