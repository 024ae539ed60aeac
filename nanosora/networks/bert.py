"""A BERT encoder in plain PyTorch, for the default text encoder (all-MiniLM-L6-v2) and any
other BERT folder: token embeddings out, nothing else (no pooler, no heads, no training).

Written here rather than loaded through `transformers` because importing transformers'
model code costs a fresh process more than the whole default clip does (it imports torch's
compiler), and `nanosora generate` starts a fresh process every time. The arithmetic is
BERT's (Devlin et al. 2019): word, position and segment embeddings with a LayerNorm, then
post-norm blocks of self-attention and a GELU MLP; parameter names are the checkpoint's,
so the weights load strictly. tests/test_text.py checks it against transformers' BertModel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def read(cls, path: Path) -> BertConfig:
        """The fields this encoder needs from a transformers config.json; an error if it is
        not a BERT encoder this code computes exactly (model type, activation, positions)."""
        raw = json.loads(path.read_text())
        kind = (raw.get("model_type"), raw.get("hidden_act"), raw.get("position_embedding_type", "absolute"))
        if kind != ("bert", "gelu", "absolute"):
            raise ValueError(f"{path}: not a BERT encoder with GELU and absolute positions ({kind})")
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__})


def embedding(n: int, d: int) -> nn.Embedding:
    # no random draw: the weights come from the file, and a normal draw on the meta device
    # imports torch's compiler, the cost this module exists to avoid
    return nn.Embedding(n, d, _weight=torch.empty(n, d))


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, ids):  # (B, L) -> (B, L, D); one segment, as a sentence encoder uses it
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)


class Dense(nn.Module):
    """A linear layer, then (with norm) the residual and a LayerNorm, under BERT's names."""

    def __init__(self, cin: int, cout: int, eps: float | None = None):
        super().__init__()
        self.dense = nn.Linear(cin, cout)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(cout, eps=eps)

    def forward(self, x, residual=None):
        y = self.dense(x)
        return y if residual is None else self.LayerNorm(y + residual)


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(3))

    def forward(self, x, mask):  # x (B, L, D), mask (B, 1, 1, L) bool -> (B, L, D)
        q, k, v = (
            f(x).unflatten(-1, (self.heads, -1)).transpose(1, 2) for f in (self.query, self.key, self.value)
        )
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)


class Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = Dense(c.hidden_size, c.hidden_size, c.layer_norm_eps)


class Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Dense(c.hidden_size, c.intermediate_size)
        self.output = Dense(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x, mask):
        x = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate(x)), x)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class Bert(nn.Module):
    """ids (B, L) and attention mask (B, L) -> the last hidden states (B, L, D)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(ids)
        mask = attention_mask.bool()[:, None, None, :]
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x

    @classmethod
    def load(cls, folder: Path) -> Bert:
        """The encoder of a BERT folder (config.json, model.safetensors), built on the meta
        device and filled strictly; the checkpoint's pooler and position-id buffer, which a
        token encoder does not use, are the only keys left out."""
        from safetensors.torch import load_file

        with torch.device("meta"):
            model = cls(BertConfig.read(folder / "config.json"))
        sd = load_file(str(folder / "model.safetensors"))
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        model.load_state_dict(sd, assign=True, strict=True)
        return model.eval()
