"""The FailCoT example format (made by ``f2p_datasets.failcot``, read by verifiers' training and
evaluation): one JSON object per line in ``shards/<scene>/examples.jsonl`` under a dataset root.

Common fields: ``id``, ``split`` (train / val / test), ``mode`` (plan / execution), ``task``,
``n_objects``, ``seed``, ``layout``, ``instruction``, ``goal`` ([predicate, subject, object|null]
over object ids), ``views`` (camera names), ``scene`` (SceneFacts as a dict), ``label``
(success / failure), ``category``, ``cause``, ``reasoning`` and ``answer`` (the reasoning, the
answer and the category in Guardian's output format).
plan: ``plan`` [{skill, target, params, text}], ``images.initial`` [one path per view].
execution: ``step_index``, ``subtask`` {skill, target, params, text}, ``scene_after``,
``images.before`` / ``images.after`` [paths], ``perturbation``.
Image paths are relative to the dataset root.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from f2p_common.interfaces import SkillCall

from .taxonomy import EXECUTION, PLAN, check_mode
from .verifier import ExecutionQuery, PlanQuery
from .world import SceneFacts


def load_examples(root: str | os.PathLike, split: str | None = None, mode: str | None = None) -> list[dict]:
    """The examples under ``root`` (every finished shard, in shard order), optionally of one
    split and / or mode."""
    if mode is not None:
        check_mode(mode)
    out = []
    for path in sorted(Path(root).glob("shards/*/examples.jsonl")):
        for line in path.read_text().splitlines():
            ex = json.loads(line)
            if (split is None or ex["split"] == split) and (mode is None or ex["mode"] == mode):
                out.append(ex)
    return out


def read_image(root: str | os.PathLike, rel: str) -> np.ndarray:
    from PIL import Image

    with Image.open(Path(root) / rel) as im:
        return np.asarray(im.convert("RGB"))


def _call(d: dict) -> SkillCall:
    return SkillCall(d["skill"], (d["target"],), tuple(d["params"]))


def to_query(ex: dict, root: str | os.PathLike | None = None) -> PlanQuery | ExecutionQuery:
    """The verification query of an example; with ``root`` its images are read too."""
    load = (lambda paths: [read_image(root, p) for p in paths]) if root is not None else (lambda paths: [])
    goal = [tuple(g) for g in ex["goal"]]
    if ex["mode"] == PLAN:
        return PlanQuery(ex["instruction"], [_call(s) for s in ex["plan"]], SceneFacts.from_dict(ex["scene"]), goal,
                         load(ex["images"]["initial"]))
    if ex["mode"] == EXECUTION:
        return ExecutionQuery(ex["instruction"], _call(ex["subtask"]), SceneFacts.from_dict(ex["scene"]),
                              SceneFacts.from_dict(ex["scene_after"]), load(ex["images"]["before"]),
                              load(ex["images"]["after"]))
    raise ValueError(f"example {ex.get('id')}: unknown mode {ex['mode']!r}")
