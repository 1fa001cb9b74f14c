"""Failure classification by Real2Sim replay (paper 000 §4).

"It first reconstructs the same simulation based on observation O_F and predicts the
relational effects of the action φ_k(a_k) as R''_k. If the simulation relational effects
R''_k match the real-world relational effects, the robot classifies this failure as
stemming from incorrect symbolic predictions. Otherwise, this failure is classified as a
Sim2Real gap."

The comparison is made on the failure's relations — the literals the model mispredicted
(``event.mismatches``): does the simulator, started from the scene Real2Sim builds from
O_F, end where the robot ended on exactly those? Only an "incorrect prediction" is worth
learning from in simulation; a sim-to-real gap means the simulator, not the model, is
wrong about this scene, and D+ generated there would teach the wrong effect.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from f2p_failure.detection import observed_value
from f2p_failure.events import FailureEvent
from f2p_sim.real2sim import scene_from_segments


@dataclass
class Classification:
    category: str                        # "incorrect_prediction" | "sim_to_real_gap"
    agreeing: list[dict] = field(default_factory=list)     # literals where sim == real
    disagreeing: list[dict] = field(default_factory=list)  # literals where sim != real
    sim_executed: bool = True


def classify_failure(event: FailureEvent, backend) -> Classification:
    """Replay ``event``'s skill in ``backend`` on the Real2Sim scene of O_F and compare."""
    event.validate()
    if not event.mismatches:
        raise ValueError(f"event {event.event_id} records no mispredicted relation to compare")
    r2s = scene_from_segments(event.observation_before, event.segment_labels, backend.cfg,
                              names=event.segment_ids)
    backend.load(r2s.scene)
    row = r2s.segment_map
    report = backend.execute_skill(event.skill, row[event.target], event.params)
    rel = backend.relations()
    out = Classification("incorrect_prediction", sim_executed=bool(report.executed))
    for m in event.mismatches:
        subj = row[m["subject"]]
        obj = None if m["object"] is None else row[m["object"]]
        sim = observed_value(rel.unary, rel.binary, m["predicate"], subj, obj)
        entry = {**m, "simulated": sim}
        (out.agreeing if sim == m["observed"] else out.disagreeing).append(entry)
    if out.disagreeing:
        out.category = "sim_to_real_gap"
    return out
