"""The learned verifier: a multi-view vision-language model of Guardian's family (paper 002
§IV-B, InternVL: a ViT encodes each camera view independently, pixel shuffle and an MLP project
it into a Qwen2 language model's token stream), asked a yes / no question with reasoning.

One code path for two models, both in Hugging Face's InternVL format
(``transformers.InternVLForConditionalGeneration``) and found by a local path, never a hub:
* our small model, built from a config (:class:`VLMConfig`) with a tokenizer trained in-process
  on the training texts (``tokenizers``), trained from scratch on our FailCoT
  (``f2p_training.guardian``);
* a pre-trained InternVL3 (e.g. Guardian-8B / InternVL3-8B in HF format) loaded from a local
  folder and fine-tuned with LoRA adapters (``peft``) on its language model, the vision encoder
  frozen (§IV-C).
Both read the same prompt: the instruction, the plan or subtask, and every view as
``<img><IMG_CONTEXT> x image_seq_length</img>`` (the model's own image token count); views are
resized to the vision encoder's square input and normalised with ImageNet statistics.

The answer (taxonomy.format_answer) is decided by scoring: after the prompt (with the
``thinking`` strategy, after the reasoning it generates greedily) every candidate answer —
``yes`` with ``success``, ``no`` with each of the mode's failure categories — is scored by the
model's log-probability, in one batch; the verdict is the best candidate, its confidence the
probability mass of the chosen side. CoT strategies (§IV-C): ``vanilla`` trains and answers
without reasoning; ``thinking`` trains and answers with it; ``dropout`` trains on both and
answers without.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from f2p_common.vocabulary import MOVABLE_CLASSES
from f2p_common.weights import refuse_pickled_weights

from .language import describe_plan, describe_step
from .taxonomy import CATEGORIES, SUCCESS, Verdict, format_answer
from .verifier import ExecutionQuery, PlanQuery, Verifier, check_execution_query, check_plan_query, \
    check_views

IMAGE_TOKEN, IMAGE_START, IMAGE_END = "<IMG_CONTEXT>", "<img>", "</img>"
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
TAGS = ("<think>", "</think>", "<answer>", "</answer>", "<category>", "</category>")
STRATEGIES = ("vanilla", "thinking", "dropout")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: The file next to the model that says how Guardian uses it (views, strategy, its version).
GUARDIAN_FILE = "guardian.json"
#: The small verifier shipped as package data (``share/f2p_guardian/models/``).
SHIPPED_MODEL = "guardian_vlm"


def model_path(value: str = "") -> Path:
    """The folder of a Guardian model: "" → the shipped small verifier (ament index), else the path."""
    if value:
        return Path(value)
    from f2p_common.resources import share_path

    return share_path("f2p_guardian", "models", SHIPPED_MODEL)


@dataclass(frozen=True)
class VLMConfig:
    """The small model of Guardian's family: an InternViT (``vision_*``; ``image_size`` square
    pixels in ``patch_size`` patches, pixel shuffle 0.5) and a Qwen2 language model (``text_*``),
    ``vocab_size`` tokens of a BPE tokenizer trained on the data."""

    image_size: int = 128
    patch_size: int = 16
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vocab_size: int = 2000
    max_length: int = 1536

    def __post_init__(self):
        if self.image_size % self.patch_size or (self.image_size // self.patch_size) % 2:
            raise ValueError("image_size must be an even number of patches across (pixel shuffle halves it)")

    @property
    def image_seq_length(self) -> int:
        return (self.image_size // self.patch_size) ** 2 // 4


# ---------------------------------------------------------------------------- tokenizer
#: Pre-tokens: decimal numbers whole, words, single punctuation marks (the BPE merges within them).
_PRETOKEN = r"-?\d+\.\d+|[A-Za-z_]+|\d+|[^\sA-Za-z_\d]"


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A BPE tokenizer trained on ``texts`` with the prompt's special tokens, as a
    ``transformers.PreTrainedTokenizerFast`` (saved and loaded with the model)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [PAD, BOS, EOS, UNK, IMAGE_START, IMAGE_END, IMAGE_TOKEN, *TAGS]
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex(_PRETOKEN), behavior="isolated")])
    tok.decoder = decoders.BPEDecoder()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                       show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
                                   additional_special_tokens=[IMAGE_START, IMAGE_END, IMAGE_TOKEN, *TAGS])


def build_model(cfg: VLMConfig, tokenizer):
    """A randomly initialised InternVL of ``cfg``'s size over ``tokenizer``'s vocabulary."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config

    vision = InternVLVisionConfig(hidden_size=cfg.vision_hidden, num_hidden_layers=cfg.vision_layers,
                                  num_attention_heads=cfg.vision_heads, intermediate_size=2 * cfg.vision_hidden,
                                  image_size=(cfg.image_size, cfg.image_size), patch_size=(cfg.patch_size, cfg.patch_size))
    text = Qwen2Config(vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, num_hidden_layers=cfg.text_layers,
                       num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_kv_heads,
                       intermediate_size=cfg.text_intermediate, max_position_embeddings=cfg.max_length,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = InternVLConfig(vision_config=vision, text_config=text,
                            image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                            image_seq_length=cfg.image_seq_length)
    return InternVLForConditionalGeneration(config)


# ---------------------------------------------------------------------------- prompts
def plan_prompt(query: PlanQuery) -> str:
    """The plan question; ``{views}`` is where the image blocks go."""
    steps = describe_plan(query.plan, query.scene)
    return (f"Task: {query.instruction}\n{_objects(query.scene)}Plan:\n"
            + "\n".join(f"{k + 1}. {s}" for k, s in enumerate(steps)) + "\nViews:{views}\nIs the plan correct?\n")


def execution_prompt(query: ExecutionQuery) -> str:
    """The step question; ``{views}`` is where the image blocks go (each view before, then after)."""
    return (f"Task: {query.instruction}\n{_objects(query.before)}Subtask: {describe_step(query.step, query.before)}\n"
            "Views before and after:{views}\nDid the subtask succeed?\n")


def _objects(facts) -> str:
    """The perceived objects before acting, by id, class and position (what grounds the texts'
    ids in the images); empty without a scene."""
    if facts is None:
        return ""
    items = [f"{i} ({c}) at ({x:.2f}, {y:.2f}, {z:.2f})" for i, c, (x, y, z) in
             zip(facts.object_ids, facts.classes, facts.center) if c in MOVABLE_CLASSES]
    return "Objects: " + "; ".join(items) + "\n"


def candidates(mode: str) -> list[tuple[bool, str]]:
    return [(True, SUCCESS)] + [(False, c) for c in CATEGORIES[mode]]


class GuardianVLM(Verifier):
    """A vision-language verifier (module docstring). ``views``: camera views per image group, each
    an RGB uint8 image of ``image_shape`` (height, width) — the cameras' images it was trained on;
    ``strategy``: one of :data:`STRATEGIES`; ``max_reasoning_tokens``: the longest reasoning the
    thinking strategy generates."""

    name = "vlm"

    def __init__(self, model, tokenizer, views: int = 3, image_shape: tuple[int, int] = (120, 160),
                 strategy: str = "vanilla", max_reasoning_tokens: int = 384, version: str = ""):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown CoT strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        self.model, self.tokenizer, self.views, self.strategy = model, tokenizer, int(views), strategy
        self.max_reasoning_tokens, self.version = int(max_reasoning_tokens), version
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = base.config
        size = config.vision_config.image_size
        self.image_size = int(size[0] if isinstance(size, (list, tuple)) else size)
        self.image_seq_length = int(config.image_seq_length)
        self.image_token_id = int(config.image_token_id)
        if tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) != self.image_token_id:
            raise ValueError(f"the tokenizer's {IMAGE_TOKEN} is not the model's image token {self.image_token_id}")

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """The model (or its LoRA adapters), the tokenizer and ``guardian.json`` under ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path, safe_serialization=True)     # safetensors: from_pretrained loads nothing else
        self.tokenizer.save_pretrained(path)
        meta = {"views": self.views, "image_shape": list(self.image_shape), "strategy": self.strategy, "max_reasoning_tokens": self.max_reasoning_tokens,
                "version": self.version}
        (path / GUARDIAN_FILE).write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, base: str | os.PathLike | None = None,
                        strategy: str | None = None, views: int | None = None) -> "GuardianVLM":
        """Load a verifier from a local folder: a full InternVL model, or LoRA adapters over the
        model at ``base`` (the adapters' own record of their base is used when ``base`` is None).
        Weights load from safetensors only: a folder with pickle-based weights is refused
        (``f2p_common.weights.refuse_pickled_weights``). ValueError naming the problem for a folder
        that holds neither."""
        import torch
        from transformers import AutoTokenizer, InternVLForConditionalGeneration

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"no Guardian model folder at {path}")
        meta = json.loads((path / GUARDIAN_FILE).read_text()) if (path / GUARDIAN_FILE).exists() else {}
        try:
            if (path / "adapter_config.json").exists():
                from peft import PeftModel

                if base is None:
                    base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
                refuse_pickled_weights(path)
                refuse_pickled_weights(base)
                model = InternVLForConditionalGeneration.from_pretrained(base, local_files_only=True,
                                                                         dtype=torch.float32, use_safetensors=True)
                model = PeftModel.from_pretrained(model, path, local_files_only=True)
                tok_path = path if (path / "tokenizer.json").exists() or (path / "tokenizer_config.json").exists() \
                    else base
            else:
                refuse_pickled_weights(path)
                model = InternVLForConditionalGeneration.from_pretrained(path, local_files_only=True,
                                                                         dtype=torch.float32, use_safetensors=True)
                tok_path = path
            tokenizer = AutoTokenizer.from_pretrained(tok_path, local_files_only=True)
        except Exception as e:   # a corrupt or foreign folder fails in many libraries' own ways
            raise ValueError(f"cannot load a Guardian model from {path}: {type(e).__name__}: {e}") from None
        model.eval()
        return cls(model, tokenizer, views=views or int(meta.get("views", 3)),
                   image_shape=tuple(meta.get("image_shape", (120, 160))), strategy=strategy or meta.get("strategy", "vanilla"),
                   max_reasoning_tokens=int(meta.get("max_reasoning_tokens", 384)), version=meta.get("version", ""))

    # ------------------------------------------------------------------ encoding
    def resized(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(V, S, S, 3) uint8: RGB images resized to the encoder's square input."""
        from PIL import Image

        s = self.image_size
        return np.stack([np.asarray(Image.fromarray(np.asarray(im, np.uint8)).resize((s, s), Image.BILINEAR))
                         for im in images])

    @staticmethod
    def normalise(views: np.ndarray):
        """(V, 3, S, S) float tensor of (V, S, S, 3) uint8 views, ImageNet-normalised."""
        import torch

        x = (views.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())

    def pixels(self, images: Sequence[np.ndarray]):
        return self.normalise(self.resized(images))

    def _views_text(self, count: int, pairs: bool = False) -> str:
        """Image blocks of ``count`` views; with ``pairs`` each view's before and after side by
        side in the sequence (the images go in that order: before 1, after 1, before 2, ...)."""
        block = IMAGE_START + IMAGE_TOKEN * self.image_seq_length + IMAGE_END
        if pairs:
            return "".join(f" view {k + 1} before {block} after {block}" for k in range(count))
        return "".join(f" view {k + 1} {block}" for k in range(count))

    def prompt(self, query: PlanQuery | ExecutionQuery) -> tuple[str, list[np.ndarray]]:
        """The prompt text (image blocks included) and its images, in order; QueryError for a bad query."""
        if isinstance(query, PlanQuery):
            check_plan_query(query, need_scene=False)
            self._check_images(query.images, "initial views")
            return BOS + plan_prompt(query).format(views=self._views_text(self.views)), list(query.images)
        check_execution_query(query, need_scene=False)
        self._check_images(query.images_before, "views before")
        self._check_images(query.images_after, "views after")
        text = execution_prompt(query).format(views=self._views_text(self.views, pairs=True))
        images = [im for pair in zip(query.images_before, query.images_after) for im in pair]
        return BOS + text, images

    def _check_images(self, images, what: str) -> None:
        height, width = self.image_shape
        check_views(images, self.views, height, width, what)

    def target_text(self, reasoning: str, success: bool, category: str, with_reasoning: bool) -> str:
        return format_answer(reasoning if with_reasoning else "", success, category) + EOS

    def encode(self, prompt: str, target: str = "") -> tuple[list[int], int]:
        """Token ids of prompt + target and the prompt's length (labels start after it)."""
        p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t = self.tokenizer(target, add_special_tokens=False)["input_ids"] if target else []
        return p + t, len(p)

    # ------------------------------------------------------------------ verification
    def verify(self, mode: str, query) -> Verdict:
        import torch

        t0 = time.perf_counter()
        prompt, images = self.prompt(query)
        pixels = self.pixels(images)
        reasoning = ""
        with torch.no_grad():
            if self.strategy == "thinking":
                reasoning = self._reason(prompt, pixels)
                prefix = prompt + f"<think>{reasoning}</think> <answer>"
            else:
                prefix = prompt + "<answer>"
            scores = self._score(prefix, pixels, mode)
        cands = candidates(mode)
        best = int(np.argmax(scores))
        p = np.exp(scores - scores.max())
        p /= p.sum()
        success = cands[best][0]
        confidence = float(p[0] if success else p[1:].sum())
        return Verdict(mode, success, cands[best][1], min(max(confidence, 0.0), 1.0), reasoning, self.name,
                       time.perf_counter() - t0)

    def _reason(self, prompt: str, pixels) -> str:
        """Greedy reasoning after ``<think>`` until ``</think>`` (or the token budget)."""
        import torch

        ids, _ = self.encode(prompt + "<think>")
        stop = [self.tokenizer.convert_tokens_to_ids("</think>"), self.tokenizer.eos_token_id]
        out = self.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                  pixel_values=pixels, max_new_tokens=self.max_reasoning_tokens, do_sample=False,
                                  eos_token_id=stop, pad_token_id=self.tokenizer.pad_token_id)
        new = out[0, len(ids):].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        text = re.split(r"</think>|<answer>|" + re.escape(EOS), text)[0]
        return text.strip()

    def _score(self, prefix: str, pixels, mode: str) -> np.ndarray:
        """Log-probability of each candidate answer after ``prefix``, one batch."""
        import torch

        pre, n_pre = self.encode(prefix)
        rows, spans = [], []
        for success, category in candidates(mode):
            tail = self.tokenizer(f"{'yes' if success else 'no'}</answer> <category>{category}</category>",
                                  add_special_tokens=False)["input_ids"]
            rows.append(pre + tail)
            spans.append((n_pre, n_pre + len(tail)))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        logits = self.model(input_ids=ids, attention_mask=mask, pixel_values=pixels.repeat(len(rows), 1, 1, 1)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        scores = []
        for k, (a, b) in enumerate(spans):
            tok = ids[k, a:b]
            scores.append(float(logp[k, a - 1:b - 1].gather(1, tok[:, None]).sum()))
        return np.array(scores)


def load_vlm(model: str = "", base_model: str = "", strategy: str = "") -> GuardianVLM:
    """The ``vlm`` verifier: the model folder ``model`` ('' = the shipped small verifier), LoRA
    adapters over ``base_model`` ('' = the adapters' own record), CoT ``strategy`` ('' = the
    model's own)."""
    return GuardianVLM.from_pretrained(model_path(model), base=base_model or None, strategy=strategy or None)


def lora_wrap(model, rank: int = 16, alpha: int = 32, dropout: float = 0.05):
    """``model`` with LoRA adapters (rank ``rank``) on its language model's attention and MLP
    projections; the vision encoder and projector stay frozen (paper 002 §IV-C)."""
    from peft import LoraConfig, get_peft_model

    targets = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))
