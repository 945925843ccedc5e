"""Notebook 08 (zero-shot classification): the student writes the prompt-ensemble classifier, the
zero-shot prediction with its accuracy, the ELEVATER file, the compositional test, a paired comparison and
a marginal classifier. Each part registers its own when imported (in notebook order):

- nb08_classifier.py: the prompt-ensemble classifier on the course model's text tower (08.1);
- nb08_predict.py: softmax(100 x cosine) and the top-1 accuracy (08.2);
- nb08_elevater.py: the ensemble classifier from encoded prompts and the ELEVATER prediction file, byte
  for byte, rows reordered by `--index` (08.3), and two choices and one number on why one rounding in
  float64 is enough (08.q1);
- nb08_compositional.py: the strict compositional test, split into colour and shape, with a same-shape
  and a same-colour control (08.4);
- nb08_paired.py: is the difference of two classifiers on the same images beyond noise? (08.5);
- nb08_marginal.py: a shape classifier from the colour+shape classifier, colour marginalised (08.6).

They share nb08_common.py (the course model, seeded unit-length rows). The registry (`core._load_all`)
imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb08_classifier, nb08_compositional, nb08_elevater, nb08_marginal, nb08_paired, nb08_predict  # noqa: F401  (importing registers)
