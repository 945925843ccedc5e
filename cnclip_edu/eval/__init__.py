"""Chapters 07-08: feature extraction, top-k retrieval and Recall@K (cn_clip's formats), and zero-shot
classification with Chinese prompt templates (`zeroshot.py`, `prompts.py`)."""
