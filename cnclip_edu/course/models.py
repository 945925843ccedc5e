"""Which model to evaluate: the one the course trained, the shipped one, or (last resort) a random one.

Notebooks 07 and 08 call `load_course_model(work_dir)`: the model finetuned by notebook 06
(`<work_dir>/experiments/course/final`) if it exists, else the course checkpoint shipped with the
package (`cc.load("course")`), else a randomly initialized course-size model with a warning
(metrics then sit near chance: the pipeline runs, the numbers mean nothing). The command-line
tools use `eval.features.load_model(resume, ...)`, which follows cn_clip's `--resume` meaning.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

FINAL_SUBDIR = Path("experiments") / "course" / "final"


def course_model_path(work_dir: str | os.PathLike) -> Path | None:
    """`<work_dir>/experiments/course/final` if notebook 06 wrote it, else None."""
    path = Path(work_dir) / FINAL_SUBDIR
    return path if path.exists() and any(path.iterdir()) else None


def load_course_model(work_dir: str | os.PathLike, device: str = "cpu"):
    """-> (model in eval mode, preprocess, source) with source "finetuned" | "shipped" | "random"."""
    import cnclip_edu as cc
    from cnclip_edu.data.transforms import image_transform

    path = course_model_path(work_dir)
    if path is not None:
        model, preprocess = cc.load(str(path), device=device)
        return model, preprocess, "finetuned"
    try:
        model, preprocess = cc.load("course", device=device)
        return model, preprocess, "shipped"
    except FileNotFoundError as e:
        warnings.warn(f"no trained course model ({e}); using a RANDOM course model: metrics will be near chance",
                      stacklevel=2)
    model = cc.create_model("course").to(device).eval()
    return model, image_transform(model.image_resolution), "random"


def describe_source(source: str, work_dir: str | os.PathLike) -> str:
    """One sentence for the notebook output saying which model is evaluated."""
    return {
        "finetuned": f"模型：你在第 06 节训练的模型（{Path(work_dir) / FINAL_SUBDIR}）",
        "shipped": "模型：随包附带的课程模型（cc.load('course')）；运行第 06 节后，这里评测的就是你自己训练的模型",
        "random": "模型：随机初始化的课程大小模型（没找到训练好的模型）——各项指标都接近随机猜测",
    }[source]

