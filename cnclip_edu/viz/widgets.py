"""Interactive demos for the notebooks (ipywidgets): a Chinese search box over an image gallery,
and zero-shot class probabilities for a chosen image and typed labels.

Each demo is a plain object whose method does the work (`RetrievalSearch.search`,
`ZeroShotDemo.classify`): tests and papermill call those; `.widget()` wraps them in controls
for a live notebook.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

_LABEL_SPLIT = re.compile(r"[,，、;；\s]+")


def _panel(children: list, note: str):
    """A VBox whose plain-text form is `note`: a saved notebook (or a kernel without a frontend) shows
    that sentence instead of `VBox(children=(HBox(...` ; a live JupyterLab draws the controls."""
    import ipywidgets as w

    class Panel(w.VBox):
        def __repr__(self) -> str:
            return note

    return Panel(children)


def parse_labels(text: str) -> list[str]:
    """"红色的圆形，蓝色的方块、绿色三角形" -> three labels (commas, 、, ; or spaces separate)."""
    return [t for t in _LABEL_SPLIT.split(text.strip()) if t]


class RetrievalSearch:
    """Text -> image search over precomputed, L2-normalized image features."""

    def __init__(self, model, image_ids: Sequence[int], image_feats: np.ndarray, images: Mapping[int, object],
                 k: int = 5, device: str = "cpu", context_length: int = 52):
        self.model, self.images, self.k = model, images, k
        self.image_ids = np.asarray(image_ids)
        self.image_feats = image_feats
        self.device, self.context_length = device, context_length

    def encode_query(self, query: str) -> np.ndarray:
        import torch

        from cnclip_edu.tokenizer import tokenize

        if not query.strip():
            raise ValueError("empty query")
        with torch.no_grad():
            f = self.model.encode_text(tokenize([query], self.context_length).to(self.device)).float()  # (1, D)
        return (f / f.norm(dim=-1, keepdim=True)).cpu().numpy()

    def search(self, query: str, k: int | None = None) -> list[tuple[int, float]]:
        """[(image_id, cosine)] of the top-k images for a Chinese query, best first."""
        from cnclip_edu.eval.topk import topk_predictions

        scores, idx = topk_predictions(self.encode_query(query), self.image_feats, k or self.k)
        return [(int(self.image_ids[i]), float(s)) for i, s in zip(idx[0], scores[0])]

    def show(self, query: str, k: int | None = None):
        from .retrieval import plot_retrieval_grid

        hits = self.search(query, k)
        return plot_retrieval_grid([query], [[i for i, _ in hits]], self.images, scores=[[s for _, s in hits]],
                                   k=len(hits))

    def widget(self, initial: str = "一个红色的圆形"):
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        box = w.Text(value=initial, description="查询", placeholder="输入中文描述，按回车",
                     continuous_update=False)  # fires on Enter / leaving the box, not on every key
        out = w.Output()

        def run(_=None):
            out.clear_output(wait=True)
            with out:
                try:
                    fig = self.show(box.value)
                    display(fig)
                    plt.close(fig)
                except ValueError as e:
                    print(e)

        box.observe(run, names="value")
        button = w.Button(description="搜索 (search)")
        button.on_click(run)
        return _panel([w.HBox([box, button]), out], "（搜索框：在运行中的 JupyterLab 里才会显示）")


class ZeroShotDemo:
    """Class probabilities of one image for labels typed by the user (templates ensembled)."""

    def __init__(self, model, preprocess, images: Mapping[str, object], templates: Sequence[str] | None = None,
                 device: str = "cpu"):
        from cnclip_edu.eval.prompts import TOY

        self.model, self.preprocess, self.images = model, preprocess, images
        self.templates = list(templates) if templates is not None else list(TOY)
        self.device = device

    def classify(self, image, labels: Sequence[str] | str) -> dict[str, float]:
        """{label: probability}: softmax(100 * cosine) over the labels' ensembled embeddings."""
        import torch

        from cnclip_edu.eval.zeroshot import LOGIT_SCALE, zero_shot_classifier

        labels = parse_labels(labels) if isinstance(labels, str) else list(labels)
        if not labels:
            raise ValueError("type at least one label")
        if isinstance(image, str):
            image = self.images[image]
        classifier = zero_shot_classifier(self.model, labels, self.templates, self.device)   # (D, C)
        with torch.no_grad():
            f = self.model.encode_image(self.preprocess(image).unsqueeze(0).to(self.device)).float()  # (1, D)
            f = f / f.norm(dim=-1, keepdim=True)
            probs = (LOGIT_SCALE * f @ classifier).softmax(dim=-1)[0].cpu().tolist()
        return dict(zip(labels, probs))

    def show(self, image_name: str, labels: Sequence[str] | str):
        from .zeroshot import plot_class_probs

        probs = self.classify(image_name, labels)
        return plot_class_probs(self.images[image_name], list(probs), list(probs.values()), title=image_name)

    def widget(self, labels: str = "红色的圆形，蓝色的正方形，绿色的三角形"):
        import ipywidgets as w
        import matplotlib.pyplot as plt
        from IPython.display import display

        pick = w.Dropdown(options=list(self.images), description="图片")
        text = w.Text(value=labels, description="标签", layout=w.Layout(width="60%"), continuous_update=False)
        out = w.Output()

        def run(_=None):
            out.clear_output(wait=True)
            with out:
                try:
                    fig = self.show(pick.value, text.value)
                    display(fig)
                    plt.close(fig)
                except ValueError as e:
                    print(e)

        pick.observe(run, names="value")
        text.observe(run, names="value")
        run()
        return _panel([w.HBox([pick, text]), out], "（零样本分类演示：在运行中的 JupyterLab 里才会显示）")
