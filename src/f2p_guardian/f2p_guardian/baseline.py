"""The cheap learned baseline (the role of paper 002's CLIP+MLP): a small image encoder shared by
every view and a hashed bag of words of the texts, concatenated into an MLP that says success or
failure and a category. No reasoning, no language model: what a verifier gets from the same
inputs without either, so the comparison with the vision-language model means something.

Views are resized to ``image_size`` square and normalised as the VLM's are; the text is the
VLM's prompt without image blocks (instruction, plan or subtask), words and word pairs hashed
into ``text_buckets`` embedding rows (``torch.nn.EmbeddingBag``).
"""
from __future__ import annotations

import os
import re
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .taxonomy import CATEGORIES, SUCCESS, Verdict
from .verifier import ExecutionQuery, PlanQuery, Verifier, check_execution_query, check_plan_query, check_views
from .vlm import IMAGENET_MEAN, IMAGENET_STD, execution_prompt, plan_prompt

BASELINE_FILE = "baseline.pt"


@dataclass(frozen=True)
class BaselineConfig:
    image_size: int = 64
    views: int = 3
    image_shape: tuple[int, int] = (120, 160)
    text_buckets: int = 4096
    width: int = 64


def _nn():
    import torch
    from torch import nn

    class Baseline(nn.Module):
        def __init__(self, cfg: BaselineConfig):
            super().__init__()
            w = cfg.width
            self.cfg = cfg
            self.image = nn.Sequential(
                nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, w, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.text = nn.EmbeddingBag(cfg.text_buckets, w, mode="mean")
            # plan: initial views; execution: before, after and their difference
            self.mode = nn.Embedding(2, w)
            self.head = nn.Sequential(nn.Linear(w * (2 + 3 * cfg.views), 2 * w), nn.ReLU(), nn.Linear(2 * w, 2 * w),
                                      nn.ReLU())
            self.verdict = nn.Linear(2 * w, 2)
            self.category = nn.Linear(2 * w, 1 + max(len(c) for c in CATEGORIES.values()))

        def forward(self, mode, pixels, words, offsets):
            b, v = pixels.shape[0], self.cfg.views
            feats = self.image(pixels.flatten(0, 1)).view(b, pixels.shape[1], -1)
            first, second = feats[:, :v], feats[:, v:] if feats.shape[1] > v else torch.zeros_like(feats[:, :v])
            images = torch.cat([first, second, second - first], dim=1).flatten(1)
            h = self.head(torch.cat([images, self.text(words, offsets), self.mode(mode)], dim=1))
            return self.verdict(h), self.category(h)

    return Baseline


def hash_words(text: str, buckets: int) -> list[int]:
    words = re.findall(r"-?\d+\.\d+|[A-Za-z_]+\d*|\d+", text.lower())
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [zlib.crc32(g.encode()) % buckets for g in grams] or [0]


class BaselineVerifier(Verifier):
    name = "baseline"

    def __init__(self, model, version: str = ""):
        self.model, self.cfg, self.version = model, model.cfg, version
        self.model.eval()

    @classmethod
    def create(cls, cfg: BaselineConfig | None = None) -> "BaselineVerifier":
        return cls(_nn()(cfg or BaselineConfig()))

    def save(self, path: str | os.PathLike) -> Path:
        import torch

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({"config": asdict(self.cfg), "state": self.model.state_dict(), "version": self.version},
                   path / BASELINE_FILE)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BaselineVerifier":
        import torch

        f = Path(path) / BASELINE_FILE
        try:
            blob = torch.load(f, map_location="cpu", weights_only=True)
            cfg = blob["config"]
            cfg["image_shape"] = tuple(cfg["image_shape"])
            model = _nn()(BaselineConfig(**cfg))
            model.load_state_dict(blob["state"])
        except Exception as e:   # missing, truncated, garbage or foreign files fail in torch's own ways
            raise ValueError(f"cannot load the baseline verifier from {f}: {e}") from None
        return cls(model, blob.get("version", ""))

    # ------------------------------------------------------------------ inputs
    def inputs(self, query: PlanQuery | ExecutionQuery) -> tuple[int, np.ndarray, list[int]]:
        """(mode index, (V or 2V, S, S, 3) uint8 views, hashed words); QueryError for a bad query."""
        from PIL import Image

        h, w = self.cfg.image_shape
        if isinstance(query, PlanQuery):
            check_plan_query(query, need_scene=False)
            check_views(query.images, self.cfg.views, h, w, "initial views")
            mode, images, text = 0, list(query.images), plan_prompt(query).format(views="")
        else:
            check_execution_query(query, need_scene=False)
            check_views(query.images_before, self.cfg.views, h, w, "views before")
            check_views(query.images_after, self.cfg.views, h, w, "views after")
            mode, images = 1, list(query.images_before) + list(query.images_after)
            text = execution_prompt(query).format(views="")
        s = self.cfg.image_size
        views = np.stack([np.asarray(Image.fromarray(im).resize((s, s), Image.BILINEAR)) for im in images])
        return mode, views, hash_words(text, self.cfg.text_buckets)

    @staticmethod
    def batch(items: list[tuple[int, np.ndarray, list[int]]]):
        """Tensors of several :meth:`inputs` (plan views padded to the execution count)."""
        import torch

        most = max(v.shape[0] for _, v, _ in items)
        pixels = np.zeros((len(items), most) + items[0][1].shape[1:], np.uint8)
        for k, (_, v, _) in enumerate(items):
            pixels[k, :v.shape[0]] = v
        x = torch.from_numpy(pixels).float().div_(255.0)
        x = (x - torch.from_numpy(IMAGENET_MEAN)) / torch.from_numpy(IMAGENET_STD)
        words = [torch.tensor(wd) for _, _, wd in items]
        offsets = torch.tensor([0] + [len(wd) for wd in words[:-1]]).cumsum(0)
        mode = torch.tensor([m for m, _, _ in items])
        return mode, x.permute(0, 1, 4, 2, 3).contiguous(), torch.cat(words), offsets

    # ------------------------------------------------------------------ verification
    def verify(self, mode: str, query) -> Verdict:
        import torch

        t0 = time.perf_counter()
        with torch.no_grad():
            verdict, category = self.model(*self.batch([self.inputs(query)]))
        p = torch.softmax(verdict[0], 0).numpy()
        success = bool(p[1] >= p[0])
        cats = CATEGORIES[mode]
        category_name = SUCCESS if success else cats[int(torch.argmax(category[0, 1:1 + len(cats)]))]
        return Verdict(mode, success, category_name, float(max(p)), "", self.name, time.perf_counter() - t0)


def load_baseline(model: str = "") -> BaselineVerifier:
    """The ``baseline`` verifier from the folder ``model`` (it has no shipped default)."""
    if not model:
        raise ValueError("the baseline backend needs a model folder (f2p-train-guardian --strategy baseline)")
    return BaselineVerifier.load(model)


def category_index(mode: str, category: str) -> int:
    """The category head's class of ``category`` (0 = success)."""
    return 0 if category == SUCCESS else 1 + CATEGORIES[mode].index(category)
