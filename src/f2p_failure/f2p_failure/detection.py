"""Failure detection (paper 000 §4): observed relations R̂_k against predicted R'_k.

After each executed step k the robot observes R̂_k and compares it with the model's
prediction R'_k for that step. We compare the relations of the *task*: every goal literal
g = (predicate, subject, object) — the relations the plan is about (the "subtask" of §4).
A literal mismatches when the prediction's decision (p ≥ ``DECISION_THRESHOLD``) differs
from what is observed. Relations the goal does not mention are not compared: a model with a
relation-detection F1 of ~0.9 disagrees with the world on some of the ~700 relation
instances of a 9-object scene at nearly every step, so comparing everything would flag
every step as a failure and bury the ones that matter.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from f2p_common.vocabulary import BINARY_RELATIONS, UNARY_RELATIONS

#: A predicted probability at or above this counts as "the model says it holds".
DECISION_THRESHOLD = 0.5


def predicted_probability(step_relations: dict, predicate: str, subject: int, obj: int | None) -> float:
    """p of one literal from a planner step ({"unary": (N,3), "binary": (N,N,9)})."""
    if obj is None:
        return float(step_relations["unary"][subject, UNARY_RELATIONS.index(predicate)])
    return float(step_relations["binary"][subject, obj, BINARY_RELATIONS.index(predicate)])


def observed_value(unary: np.ndarray, binary: np.ndarray, predicate: str, subject: int, obj: int | None) -> bool:
    if obj is None:
        return bool(unary[subject, UNARY_RELATIONS.index(predicate)])
    return bool(binary[subject, obj, BINARY_RELATIONS.index(predicate)])


def find_mismatches(step_relations: dict, observed_unary: np.ndarray, observed_binary: np.ndarray,
                    literals: Sequence[tuple]) -> list[dict]:
    """The literals whose predicted decision differs from the observation, as FailureEvent
    ``mismatches`` entries: {"predicate", "subject", "object", "predicted" (p), "observed"}."""
    out = []
    for lit in literals:
        pred, subj, obj = lit[0], int(lit[1]), (None if lit[2] is None else int(lit[2]))
        p = predicted_probability(step_relations, pred, subj, obj)
        seen = observed_value(observed_unary, observed_binary, pred, subj, obj)
        if (p >= DECISION_THRESHOLD) != seen:
            out.append({"predicate": pred, "subject": subj, "object": obj, "predicted": p, "observed": seen})
    return out
