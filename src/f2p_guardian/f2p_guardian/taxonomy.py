"""Guardian's failure taxonomy, its verdict and its answer format (paper 002 §III-B, §IV-A).

Verification is a question with a yes / no answer: is this plan correct for this instruction
(eq. 1), did this subtask succeed (eq. 2). A failure carries a category:

planning (§III-B, "planning failures")
    wrong_object            a step manipulates an object the task does not need moved
    wrong_placement         the right objects, but a step puts one in the wrong place or state
    wrong_order             the steps would work in another order, not in this one
    missing_subtask         a needed step is absent: the goal cannot be complete
    contradictory_subtasks  a later step undoes an earlier one
execution (§III-B, "execution failures")
    no_gripper_close        the gripper reached the object but never closed: nothing moved
    wrong_placement         the right object moved, to the wrong place or state
    wrong_object            another object was manipulated
    imprecise_grasp         the gripper missed or lost the object (a missed grasp or push, a slip)
    instruction_mismatch    what happened is not what the subtask text asks (the paper's
                            "task-execution semantic mismatch" of its real-robot data)
    no_progress             the scene after equals the scene before (the paper's "revert")

A verdict's text form is the model's output format: the reasoning, then the answer, then the
category (:func:`format_answer` / :func:`parse_answer`); every verifier returns a
:class:`Verdict`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PLAN = "plan"
EXECUTION = "execution"
MODES: tuple[str, ...] = (PLAN, EXECUTION)

SUCCESS = "success"
PLAN_CATEGORIES: tuple[str, ...] = (
    "wrong_object", "wrong_placement", "wrong_order", "missing_subtask", "contradictory_subtasks")
EXECUTION_CATEGORIES: tuple[str, ...] = (
    "no_gripper_close", "wrong_placement", "wrong_object", "imprecise_grasp", "instruction_mismatch", "no_progress")
#: Per mode, the failure categories; "success" is the category of a correct plan or step.
CATEGORIES: dict[str, tuple[str, ...]] = {PLAN: PLAN_CATEGORIES, EXECUTION: EXECUTION_CATEGORIES}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown verification mode {mode!r}; known: {', '.join(MODES)}")
    return mode


def check_category(mode: str, category: str) -> str:
    """``category`` if it is "success" or one of ``mode``'s failure categories; ValueError otherwise."""
    if category != SUCCESS and category not in CATEGORIES[check_mode(mode)]:
        raise ValueError(f"unknown {mode} category {category!r}; known: {SUCCESS}, {', '.join(CATEGORIES[mode])}")
    return category


@dataclass(frozen=True)
class Verdict:
    """What a verifier says: ``success`` (the plan is correct / the step succeeded), the failure
    ``category`` ("success" when it succeeded), ``confidence`` in [0, 1] that the verdict is
    right, the step-by-step ``reasoning``, the ``verifier`` that said it and what it cost."""

    mode: str
    success: bool
    category: str
    confidence: float
    reasoning: str
    verifier: str = ""
    latency_s: float = 0.0

    def __post_init__(self):
        check_category(self.mode, self.category)
        if self.success != (self.category == SUCCESS):
            raise ValueError(f"a verdict of success={self.success} cannot have category {self.category!r}")
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")

    @property
    def answer(self) -> str:
        """The model's answer text: the reasoning, the answer and the category."""
        return format_answer(self.reasoning, self.success, self.category)


_ANSWER = re.compile(r"^\s*(?:<think>(?P<think>.*?)</think>)?\s*<answer>\s*(?P<answer>yes|no)\s*</answer>\s*"
                     r"<category>\s*(?P<category>[a-z_]+)\s*</category>\s*$", re.S)


def format_answer(reasoning: str, success: bool, category: str) -> str:
    """``<think>reasoning</think> <answer>yes|no</answer> <category>c</category>``; without
    reasoning (the vanilla strategy of §IV-C) the think part is left out."""
    think = f"<think>{reasoning.strip()}</think> " if reasoning.strip() else ""
    return f"{think}<answer>{'yes' if success else 'no'}</answer> <category>{category}</category>"


def parse_answer(text: str, mode: str) -> tuple[str, bool, str]:
    """(reasoning, success, category) of an answer text; ValueError naming what is wrong when
    the text does not follow :func:`format_answer` (a model's unfinished or garbled output)."""
    m = _ANSWER.match(text)
    if m is None:
        raise ValueError(f"not a verification answer (<think>…</think> <answer>yes|no</answer> "
                         f"<category>…</category>): {text[-120:]!r}")
    success = m["answer"] == "yes"
    category = check_category(mode, m["category"])
    if success != (category == SUCCESS):
        raise ValueError(f"answer {m['answer']!r} contradicts category {category!r}")
    return (m["think"] or "").strip(), success, category
