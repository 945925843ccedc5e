"""exercises/guards.py: an answer that reaches the library routine being built is refused by name, however
the student got hold of it (an alias, nn.Module.__call__, a C function); the reference itself runs plainly;
the profiler hook is gone afterwards; and the strict-dtype compare."""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from cnclip_edu.course.exercises.guards import MARK, guarded, refuse_shortcuts, resolve, strict_dtype
from cnclip_edu.course.exercises.towers import tiny_vit
from cnclip_edu.model.vision import VisionTransformer, random_masking

BEFORE = sys.getprofile()  # whatever a test runner may have installed
BUILDS = ("cnclip_edu.model.vision.VisionTransformer.forward", "cnclip_edu.model.vision.random_masking",
          "torch.nn.functional.scaled_dot_product_attention")


def test_resolve_finds_functions_methods_and_c_functions():
    assert resolve("cnclip_edu.model.vision.random_masking") is random_masking
    assert resolve("cnclip_edu.model.vision.VisionTransformer.forward") is VisionTransformer.forward
    assert resolve("torch.nn.functional.scaled_dot_product_attention") is F.scaled_dot_product_attention


def test_every_way_of_reaching_the_library_is_refused():
    run = guarded(VisionTransformer.forward, BUILDS)
    vit, x = tiny_vit(seed=1), torch.randn(2, 3, 12, 12)
    alias = random_masking  # as after `from cnclip_edu.model.vision import random_masking as mine`
    q = torch.randn(1, 2, 3, 4)
    assert run(lambda v, x: v(x), vit, x) == {MARK: BUILDS[0]}                    # nn.Module.__call__
    assert run(lambda t: alias(t, 0.5), torch.randn(1, 5, 2)) == {MARK: BUILDS[1]}  # an alias
    assert run(lambda t: F.scaled_dot_product_attention(t, t, t), q) == {MARK: BUILDS[2]}  # a C function
    assert sys.getprofile() is BEFORE


def test_the_reference_and_honest_answers_run_plainly():
    run = guarded(VisionTransformer.forward, BUILDS)
    vit, x = tiny_vit(seed=1), torch.randn(2, 3, 12, 12)
    assert torch.equal(run(VisionTransformer.forward, vit, x), vit(x))
    assert torch.equal(run(lambda v, x: v.patch_tokens(x) * 2, vit, x), vit.patch_tokens(x) * 2)
    assert sys.getprofile() is BEFORE


def test_the_hook_is_removed_when_the_answer_raises():
    run = guarded(VisionTransformer.forward, BUILDS)

    def broken(x):
        raise ValueError("student bug")

    try:
        run(broken, 1)
    except ValueError:
        pass
    assert sys.getprofile() is BEFORE


def test_compare_names_the_routine_and_checks_dtype():
    msg = refuse_shortcuts()(torch.zeros(2), {MARK: BUILDS[1]})
    assert "random_masking" in msg and "自己" in msg
    assert refuse_shortcuts()(torch.zeros(2), torch.zeros(2)) is None
    assert "float64" in strict_dtype()(torch.zeros(2, dtype=torch.float64), torch.zeros(2))
    assert strict_dtype()(torch.zeros(2), torch.zeros(2)) is None
