"""Evaluation: feature extraction, top-k retrieval and Recall@K (cn_clip's formats)."""
