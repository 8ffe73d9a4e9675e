"""all-MiniLM-L6-v2 as a plain torch module (BERT encoder), its weights
loaded from the project's minilm.safetensors, with a small classification
head: a real model to fine-tune for the DCP tests and benchmark.

Parameter names are the safetensors names (``embeddings.word_embeddings.weight``,
``encoder.layer.0.attention.self.query.weight``, ...) plus ``head.*``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Tuple

import torch
from safetensors.torch import load_file
from torch import nn

HIDDEN, HEADS, FFN, VOCAB = 384, 12, 1536, 30522


class _Dense(nn.Module):
    def __init__(self, d_in: int, d_out: int, norm: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        if norm:
            self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        setattr(self, "self", _SelfAttention())
        self.output = _Dense(HIDDEN, HIDDEN, norm=True)


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()
        self.intermediate = _Dense(HIDDEN, FFN, norm=False)
        self.output = _Dense(FFN, HIDDEN, norm=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        sa = getattr(self.attention, "self")

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2)

        q, k, v = heads(sa.query(x)), heads(sa.key(x)), heads(sa.value(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS), dim=-1) @ v
        att = att.transpose(1, 2).reshape(b, t, HIDDEN)
        out = self.attention.output
        x = out.LayerNorm(x + out.dense(att))
        h = nn.functional.gelu(self.intermediate.dense(x))
        return self.output.LayerNorm(x + self.output.dense(h))


class _Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(512, HIDDEN)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(512).unsqueeze(0))


class _Encoder(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer() for _ in range(layers))


class MiniLM(nn.Module):
    """The encoder (`layers` of its 6 layers), the pooler, and a 2-class head."""

    def __init__(self, layers: int = 6) -> None:
        super().__init__()
        self.embeddings = _Embeddings()
        self.encoder = _Encoder(layers)
        self.pooler = _Dense(HIDDEN, HIDDEN, norm=False)
        self.head = nn.Linear(HIDDEN, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.embeddings
        t = ids.shape[1]
        x = e.word_embeddings(ids) + e.position_embeddings(e.position_ids[:, :t]) + e.token_type_embeddings.weight[0]
        x = e.LayerNorm(x)
        for layer in self.encoder.layer:
            x = layer(x)
        return self.head(torch.tanh(self.pooler.dense(x[:, 0])))


def load_minilm(models: Path, layers: int = 6, seed: int = 0) -> MiniLM:
    """MiniLM with the real weights (the head initialised from `seed`)."""
    torch.manual_seed(seed)
    model = MiniLM(layers)
    weights = load_file(str(Path(models) / "minilm.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert all(k.startswith("head.") for k in missing), missing
    assert all(k.startswith("encoder.layer.") for k in unexpected), unexpected  # layers left out
    return model


def batch(step: int, size: int = 8, length: int = 32) -> Tuple[torch.Tensor, torch.Tensor]:
    """A deterministic batch of token ids and labels for training step `step`."""
    g = torch.Generator().manual_seed(1000 + step)
    ids = torch.randint(1000, VOCAB, (size, length), generator=g)
    return ids, (ids[:, 1] % 2)


def train(model: nn.Module, optim: torch.optim.Optimizer, first_step: int, steps: int) -> float:
    """`steps` steps of fine-tuning; the last loss."""
    loss = torch.zeros(())
    for s in range(first_step, first_step + steps):
        ids, labels = batch(s)
        loss = nn.functional.cross_entropy(model(ids), labels)
        optim.zero_grad()
        loss.backward()
        optim.step()
    return float(loss.detach())
