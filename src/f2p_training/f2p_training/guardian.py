"""Training and evaluating Guardian's learned verifiers on FailCoT (paper 002 §IV-C, §V).

:func:`train_vlm` trains the vision-language verifier (``f2p_guardian.vlm``): our small InternVL
from scratch (a BPE tokenizer trained on the training split's texts first), or a pre-trained
InternVL from a local path with LoRA adapters on its language model (``pretrained``), by
next-token cross-entropy on the answer only (the prompt and the image tokens are not
targets), AdamW (weight decay 0.05) with a cosine schedule after a linear warm-up. The CoT
strategy decides the targets: ``vanilla`` the answer alone, ``thinking`` the reasoning and the
answer, ``dropout`` either, drawn per example and epoch (half and half). The checkpoint kept is
the one with the best validation accuracy (the paper's selection), on up to ``val_limit``
validation examples (unseen task variants and camera).

:func:`train_baseline` trains the cheap baseline (``f2p_guardian.baseline``) with cross-entropy
on the verdict and the category. :func:`evaluate` scores any verifier on examples: accuracy of
the verdict per mode and per category with counts, category accuracy, latency per call.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from f2p_common.weights import refuse_pickled_weights
from f2p_guardian.baseline import BaselineConfig, BaselineVerifier, category_index
from f2p_guardian.examples import load_examples, to_query
from f2p_guardian.taxonomy import MODES, PLAN
from f2p_guardian.verifier import Verifier
from f2p_guardian.vlm import (STRATEGIES, GuardianVLM, VLMConfig, build_model, execution_prompt, lora_wrap,
                              plan_prompt, train_tokenizer)

Progress = Callable[[str], None]


@dataclass
class VLMTrainConfig:
    """``data``: a FailCoT folder; ``out``: where the best checkpoint goes; ``max_train``: use at
    most this many training examples (a fixed random subset; 0 = all), for the scaling curve."""

    data: str
    out: str
    strategy: str = "thinking"
    epochs: int = 12
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    max_train: int = 0
    val_limit: int = 80
    seed: int = 0
    threads: int = 2
    model: VLMConfig = field(default_factory=VLMConfig)
    #: A local folder with a pre-trained InternVL (HF format): fine-tuned with LoRA of this rank.
    pretrained: str | None = None
    lora_rank: int = 16
    max_reasoning_tokens: int = 320

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")


@dataclass
class TrainResult:
    path: Path
    train_examples: int
    val_accuracy: list[float] = field(default_factory=list)     # per epoch
    best_epoch: int = -1
    seconds: float = 0.0
    parameters: int = 0
    trainable_parameters: int = 0
    size_bytes: int = 0


def _subset(examples: list[dict], limit: int, seed: int) -> list[dict]:
    if not limit or limit >= len(examples):
        return examples
    idx = np.sort(np.random.default_rng(seed).choice(len(examples), limit, replace=False))
    return [examples[i] for i in idx]


def _prompt_text(ex: dict) -> str:
    q = to_query(ex)
    return plan_prompt(q).format(views="") if ex["mode"] == PLAN else \
        execution_prompt(q).format(views="")


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _start(cfg, val_limit: int = 0) -> tuple[list[dict], list[dict], np.random.Generator]:
    """Seeded torch on ``cfg.threads``; the training examples (at most ``cfg.max_train``) and the
    validation ones (at most ``val_limit``; 0 = all); ValueError when a split is empty."""
    import torch

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    train = _subset(load_examples(cfg.data, "train"), cfg.max_train, cfg.seed)
    val = _subset(load_examples(cfg.data, "val"), val_limit, cfg.seed + 1)
    if not train or not val:
        raise ValueError(f"{cfg.data} has no train or no val examples (run f2p-failcot first)")
    return train, val, np.random.default_rng(cfg.seed)


def train_vlm(cfg: VLMTrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train the vision-language verifier of ``cfg`` (module docstring)."""
    import torch

    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    train, val, rng = _start(cfg, cfg.val_limit)
    views = len(train[0]["views"])
    shape = tuple(int(v) for v in _image_shape(cfg.data, train[0]))
    if cfg.pretrained:
        from transformers import AutoTokenizer, InternVLForConditionalGeneration

        refuse_pickled_weights(cfg.pretrained)
        base = InternVLForConditionalGeneration.from_pretrained(cfg.pretrained, local_files_only=True,
                                                                dtype=torch.float32, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(cfg.pretrained, local_files_only=True)
        model = lora_wrap(base, rank=cfg.lora_rank)
    else:
        texts = [_prompt_text(ex) + ex["answer"] for ex in train]
        tokenizer = train_tokenizer(texts, cfg.model.vocab_size)
        model = build_model(cfg.model, tokenizer)
    verifier = GuardianVLM(model, tokenizer, views=views, image_shape=shape, strategy=cfg.strategy,
                           max_reasoning_tokens=cfg.max_reasoning_tokens)
    say(f"{len(train)} training and {len(val)} validation examples, {sum(p.numel() for p in model.parameters())} "
        f"parameters, strategy {cfg.strategy}")
    # Inputs once: the prompt's tokens and the views resized to the encoder (uint8).
    items = []
    for ex in train:
        q = to_query(ex, cfg.data)
        prompt, images = verifier.prompt(q)
        items.append((prompt, verifier.resized(images), ex))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(items) / cfg.batch_size)
    warm = max(1, int(cfg.warmup_fraction * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    result = TrainResult(Path(cfg.out), len(train), parameters=sum(p.numel() for p in model.parameters()),
                         trainable_parameters=sum(p.numel() for p in params))
    best = -1.0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(items))
        losses = []
        for b in range(0, len(order), cfg.batch_size):
            batch = [items[i] for i in order[b:b + cfg.batch_size]]
            ids, labels, mask, pixels = _batch(verifier, batch, cfg.strategy, rng)
            loss = model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        acc = evaluate(verifier, val, cfg.data)["accuracy"]
        result.val_accuracy.append(acc)
        say(f"epoch {epoch + 1}/{cfg.epochs}: loss {np.mean(losses):.3f}, validation accuracy {acc:.3f} "
            f"({time.perf_counter() - t0:.0f} s)")
        if acc > best:
            best, result.best_epoch = acc, epoch
            verifier.version = f"{cfg.strategy}-e{epoch + 1}"
            verifier.save(cfg.out)
            (Path(cfg.out) / "training.json").write_text(json.dumps(
                {"config": _jsonable(asdict(cfg)), "epoch": epoch + 1, "validation_accuracy": acc,
                 "train_examples": len(train), "val_examples": len(val)}, indent=1))
    result.seconds = time.perf_counter() - t0
    result.size_bytes = _folder_bytes(result.path)
    return result


def _image_shape(root: str, ex: dict) -> tuple[int, int]:
    from f2p_guardian.examples import read_image

    first = next(iter(ex["images"].values()))[0]
    return read_image(root, first).shape[:2]


def _jsonable(d):
    return json.loads(json.dumps(d, default=str))


def _batch(verifier: GuardianVLM, batch, strategy: str, rng):
    """(input_ids, labels, attention_mask, pixel_values) of prompt + target rows, right-padded."""
    import torch

    rows, starts, pixels = [], [], []
    for prompt, views, ex in batch:
        with_reasoning = strategy == "thinking" or (strategy == "dropout" and rng.random() < 0.5)
        target = verifier.target_text(ex["reasoning"], ex["label"] == "success", ex["category"], with_reasoning)
        ids, start = verifier.encode(prompt, target)
        rows.append(ids)
        starts.append(start)
        pixels.append(views)
    width = max(len(r) for r in rows)
    pad = verifier.tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, (r, s) in enumerate(zip(rows, starts)):
        ids[k, :len(r)] = torch.tensor(r)
        labels[k, s:len(r)] = torch.tensor(r[s:])
        mask[k, :len(r)] = 1
    return ids, labels, mask, verifier.normalise(np.concatenate(pixels))


# ---------------------------------------------------------------------------- the baseline
@dataclass
class BaselineTrainConfig:
    data: str
    out: str
    epochs: int = 30
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    max_train: int = 0
    seed: int = 0
    threads: int = 2
    model: BaselineConfig = field(default_factory=BaselineConfig)


def train_baseline(cfg: BaselineTrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train the cheap baseline; the checkpoint with the best validation accuracy is kept."""
    import torch

    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    train, val, rng = _start(cfg)
    shape = _image_shape(cfg.data, train[0])
    model_cfg = BaselineConfig(**{**asdict(cfg.model), "views": len(train[0]["views"]), "image_shape": tuple(shape)})
    verifier = BaselineVerifier.create(model_cfg)
    model = verifier.model
    items = [(verifier.inputs(to_query(ex, cfg.data)), int(ex["label"] == "success"),
              category_index(ex["mode"], ex["category"])) for ex in train]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    result = TrainResult(Path(cfg.out), len(train), parameters=sum(p.numel() for p in model.parameters()))
    result.trainable_parameters = result.parameters
    best = -1.0
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(items))
        for b in range(0, len(order), cfg.batch_size):
            chosen = [items[i] for i in order[b:b + cfg.batch_size]]
            verdict, category = model(*BaselineVerifier.batch([c[0] for c in chosen]))
            loss = torch.nn.functional.cross_entropy(verdict, torch.tensor([c[1] for c in chosen])) + \
                0.5 * torch.nn.functional.cross_entropy(category, torch.tensor([c[2] for c in chosen]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        acc = evaluate(verifier, val, cfg.data)["accuracy"]
        result.val_accuracy.append(acc)
        say(f"epoch {epoch + 1}/{cfg.epochs}: validation accuracy {acc:.3f}")
        if acc > best:
            best, result.best_epoch = acc, epoch
            verifier.version = f"baseline-e{epoch + 1}"
            verifier.save(cfg.out)
    result.seconds = time.perf_counter() - t0
    result.size_bytes = _folder_bytes(result.path)
    return result


# ---------------------------------------------------------------------------- evaluation
def evaluate(verifier: Verifier, examples: Sequence[dict], root: str | os.PathLike | None) -> dict:
    """Verdict accuracy over ``examples`` (overall, per mode, per mode and category, with counts),
    category accuracy, and latency per call (mean, p95); ``root`` None gives no images (the
    symbolic verifier reads boxes only)."""
    per: dict = {}
    lat, right, cat_right = [], 0, 0
    for ex in examples:
        q = to_query(ex, root)
        v = verifier.verify_plan(q) if ex["mode"] == PLAN else verifier.verify_execution(q)
        ok = v.success == (ex["label"] == "success")
        right += ok
        cat_right += v.category == ex["category"]
        lat.append(v.latency_s)
        m = per.setdefault(ex["mode"], {"right": 0, "count": 0, "categories": {}})
        m["right"] += ok
        m["count"] += 1
        c = m["categories"].setdefault(ex["category"], {"right": 0, "count": 0})
        c["right"] += ok
        c["count"] += 1
    for m in per.values():
        m["accuracy"] = m["right"] / m["count"]
        for c in m["categories"].values():
            c["accuracy"] = c["right"] / c["count"]
    n = max(len(examples), 1)
    return {"accuracy": right / n, "count": len(examples), "category_accuracy": cat_right / n,
            "modes": {k: per[k] for k in MODES if k in per},
            "latency_s": {"mean": float(np.mean(lat)) if lat else 0.0,
                          "p95": float(np.percentile(lat, 95)) if lat else 0.0}}


def main(argv=None) -> int:
    import argparse
    import sys

    d = VLMTrainConfig("", "")
    p = argparse.ArgumentParser(description="train Guardian's vision-language verifier (or the baseline) on FailCoT")
    p.add_argument("--data", required=True, help="a FailCoT folder (f2p-failcot)")
    p.add_argument("--out", required=True, help="folder for the best checkpoint")
    p.add_argument("--strategy", default=d.strategy, choices=STRATEGIES + ("baseline",))
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--max-train", type=int, default=0, help="at most this many training examples (0: all)")
    p.add_argument("--pretrained", default=None,
                   help="local folder of a pre-trained InternVL (HF format): fine-tune it with LoRA")
    p.add_argument("--lora-rank", type=int, default=d.lora_rank)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--seed", type=int, default=d.seed)
    a = p.parse_args(argv)
    say = lambda msg: print(f"[f2p-train-guardian] {msg}", flush=True)   # noqa: E731
    try:
        if a.strategy == "baseline":
            result = train_baseline(BaselineTrainConfig(a.data, a.out, epochs=a.epochs, max_train=a.max_train,
                                                         seed=a.seed, threads=a.threads), say)
        else:
            result = train_vlm(VLMTrainConfig(a.data, a.out, a.strategy, a.epochs, a.batch_size, a.lr,
                                              max_train=a.max_train, seed=a.seed, threads=a.threads,
                                              pretrained=a.pretrained, lora_rank=a.lora_rank), say)
    except (ValueError, OSError) as e:
        print(f"f2p-train-guardian: {e}", file=sys.stderr)
        return 2
    say(f"best validation accuracy {max(result.val_accuracy):.3f} at epoch {result.best_epoch + 1}, "
        f"{result.size_bytes / 1e6:.1f} MB in {result.path} ({result.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
