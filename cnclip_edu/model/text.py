"""Text tower of Chinese-CLIP: BERT as used by RoBERTa-wwm-ext / RBT3 (Chinese, whole-word masking).

Word + position + token-type embeddings, LayerNorm (eps 1e-12), then post-LN encoder layers
(x = LN(x + attn(x)); x = LN(x + ffn(x))) with erf-GELU. Padding (token id 0) is masked out of
attention. CLIP reads the hidden state of the first token, `[CLS]`, and projects it. Parameter
names are cn_clip's (`embeddings.word_embeddings`, `encoder.layer.{i}.attention.self.query`, ...).
There is no pooler: cn_clip drops `bert.pooler.*`, so do we.

    from .text import TextConfig, BertModel
    bert = BertModel(TextConfig.from_name("RBT3-chinese"))
    hidden = bert(tokens)            # (B, L, H); hidden[:, 0] is [CLS]
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PAD_ID = 0  # [PAD] in the Chinese BERT vocabulary


@dataclass
class TextConfig:
    """One text JSON of cn_clip (same key names)."""

    name: str
    vocab_size: int = 21128
    text_hidden_size: int = 768
    text_num_hidden_layers: int = 12
    text_num_attention_heads: int = 12
    text_intermediate_size: int = 3072
    text_max_position_embeddings: int = 512
    text_type_vocab_size: int = 2
    text_hidden_act: str = "gelu"
    text_hidden_dropout_prob: float = 0.1
    text_attention_probs_dropout_prob: float = 0.1
    text_initializer_range: float = 0.02

    @classmethod
    def from_dict(cls, d: dict, name: str = "custom") -> "TextConfig":
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k != "name" and k in d}
        return cls(name=d.get("text_model", name), **fields)

    @classmethod
    def from_name(cls, name: str) -> "TextConfig":
        path = CONFIG_DIR / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"unknown text model {name!r}; known: {text_model_names()}")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), name=name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        return d


def text_model_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json") if "vocab_size" in json.loads(p.read_text()))


_ACTIVATIONS = {
    "gelu": F.gelu,  # exact (erf) GELU, as BERT
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "swish": F.silu,
}


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        H = cfg.text_hidden_size
        self.word_embeddings = nn.Embedding(cfg.vocab_size, H, padding_idx=PAD_ID)
        self.position_embeddings = nn.Embedding(cfg.text_max_position_embeddings, H)
        self.token_type_embeddings = nn.Embedding(cfg.text_type_vocab_size, H)
        self.LayerNorm = nn.LayerNorm(H, eps=1e-12)
        self.dropout = nn.Dropout(cfg.text_hidden_dropout_prob)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, L, H)
        L = ids.shape[1]
        if L > self.position_embeddings.num_embeddings:
            raise ValueError(f"token sequence of length {L} is longer than the model's "
                             f"{self.position_embeddings.num_embeddings} positions")
        pos = torch.arange(L, device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        H, nh = cfg.text_hidden_size, cfg.text_num_attention_heads
        if H % nh:
            raise ValueError(f"text hidden size {H} is not divisible by {nh} heads")
        self.heads = nh
        self.dropout_p = cfg.text_attention_probs_dropout_prob
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, H) -> (B, nh, L, Dh)
        B, L, H = x.shape
        return x.view(B, L, self.heads, H // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, L, H = x.shape
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.dropout_p if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, L, H)  # (B, L, H)


class DenseLayerNorm(nn.Module):
    """`LayerNorm(x + dropout(dense(h)))`: BERT's post-LN residual (names `dense`, `LayerNorm`)."""

    def __init__(self, d_in: int, d_out: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dropout(self.dense(h)))


class BertAttention(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        H = cfg.text_hidden_size
        self.self = BertSelfAttention(cfg)
        self.output = DenseLayerNorm(H, H, cfg.text_hidden_dropout_prob)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, bias), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.text_hidden_size, cfg.text_intermediate_size)
        if cfg.text_hidden_act not in _ACTIVATIONS:
            raise ValueError(f"text_hidden_act {cfg.text_hidden_act!r} not supported; use one of {list(_ACTIVATIONS)}")
        self.act = _ACTIVATIONS[cfg.text_hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class BertLayer(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = DenseLayerNorm(cfg.text_intermediate_size, cfg.text_hidden_size, cfg.text_hidden_dropout_prob)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # (B, L, H)
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class BertEncoder(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(cfg) for _ in range(cfg.text_num_hidden_layers)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, bias, use_reentrant=False)
            else:
                x = layer(x, bias)
        return x


def padding_bias(ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) token ids -> additive attention bias (B, 1, 1, L): 0 for real tokens, very negative for [PAD].

    A large finite value instead of -inf keeps an all-padding row finite (uniform attention, no NaN).
    """
    return ((ids == PAD_ID).to(dtype) * torch.finfo(dtype).min)[:, None, None, :]


class BertModel(nn.Module):
    """Token ids (B, L) -> hidden states (B, L, H)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        std = self.config.text_initializer_range
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)  # BERT's init (the [PAD] row included, as in cn_clip)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.grad_checkpointing = enable

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)  # (B, L, H)
        return self.encoder(x, padding_bias(ids, x.dtype))  # (B, L, H)
