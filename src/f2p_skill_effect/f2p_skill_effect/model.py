"""Skill-effect model Γ (paper 000 §3 and A.11): Enc, Dyn, Dec over segmented point clouds.

γ(O_t, φ_t, a_t) = Dec(Dyn(Enc(O_t), φ_t(a_t))) and Γ = γ_H ∘ … ∘ γ_1 (A.11.1).

* :class:`SkillEffectModel` is the interface every skill-effect model implements (this
  Points2Plans-like model now; Stow-GNN-like or Binary-Pred-like ones later): ``encode``
  observations to an object-centric latent ``(B, N, D)``, ``detect`` relations from a
  latent, ``step`` a latent through one skill, and ``rollout`` a skill sequence. The
  planner only uses this interface.
* :class:`PointsToPlansModel` is the A.11.2 architecture: a simplified PointConv /
  PointNet++ set-abstraction encoder (128 pts / 8 nbrs / r 0.1 → 16 / 16 / 0.2 → group-all
  r 0.4; widths 32/64/128) giving P_i (128-d) ⊕ sinusoidal ID_i (128-d) = X_i (256-d); a
  skill encoding MLP_para(a) (2×128 ReLU) ⊕ ID_target; a 2-layer, 2-head, width-256
  transformer over object tokens + the skill token predicting δX, X_{t+1} = X_t + δX; and
  decoders Dec_p (3×64, δX → δp), Dec_u (2×64) and Dec_b (3×64 over X_i ⊕ X_j).
  ``ModelConfig.target_relations`` (an option beyond A.11.2, off in the pre-trained model,
  on in the parent of the 5-minute learning recipe) adds to each object token, before Dyn, a
  projection of Dec_b's relations between it and the target and of a target flag, so an
  effect can be keyed on "inside the target" rather than on how an object looks.
* :func:`compute_losses` is the A.11.2 training objective: L = L_detection +
  L_regularization + L_pos + L_prediction.

Relation order is f2p_common.vocabulary's (UNARY_RELATIONS, BINARY_RELATIONS); skill index
order is ``SKILLS`` order (``skill_index``). Relations are independent binary variables, so each is a 2-way
softmax, i.e. a sigmoid on one logit, trained with binary cross-entropy (the paper's CE).
Variable object counts are padded to a common N with a boolean ``mask`` (True = real).
No ROS import: this module is used on- and off-board.
"""
from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from f2p_common.vocabulary import (BINARY_RELATIONS, PARAM_DIM, SKILLS, UNARY_RELATIONS, normalise,
                                   padded_parameter_box)


# --------------------------------------------------------------------------- data types
@dataclass
class Observation:
    """Segmented point clouds O_t, padded: ``points`` (B, N, P, 3) metres, ``mask`` (B, N) bool."""

    points: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self):
        if self.points.ndim != 4 or self.points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, P, 3), got {tuple(self.points.shape)}")
        if self.mask.shape != self.points.shape[:2]:
            raise ValueError(f"mask must be (B, N) = {tuple(self.points.shape[:2])}, got {tuple(self.mask.shape)}")
        if not torch.isfinite(self.points).all():
            raise ValueError("points contain NaN or inf")

    @staticmethod
    def from_clouds(clouds: Sequence[np.ndarray], n_points: int, seed: int = 0,
                    max_objects: int | None = None) -> "Observation":
        """One scene (B = 1) from per-object (P_i, 3) arrays, resampled to ``n_points`` each.

        Resampling is without replacement when a cloud has enough points, with replacement
        otherwise, from a seeded generator so the same input gives the same tensor. An empty
        or non-finite cloud is an error, never silently dropped."""
        rng = np.random.default_rng(seed)
        n = len(clouds) if max_objects is None else max_objects
        if len(clouds) == 0 or len(clouds) > n:
            raise ValueError(f"need 1..{n} object clouds, got {len(clouds)}")
        pts = np.zeros((1, n, n_points, 3), np.float32)
        for i, c in enumerate(clouds):
            c = np.asarray(c, np.float32).reshape(-1, 3)
            if c.shape[0] == 0:
                raise ValueError(f"object {i} has an empty point cloud")
            if not np.isfinite(c).all():
                raise ValueError(f"object {i} has non-finite points")
            idx = rng.choice(c.shape[0], n_points, replace=c.shape[0] < n_points)
            pts[0, i] = c[idx]
        mask = np.zeros((1, n), bool)
        mask[0, :len(clouds)] = True
        return Observation(torch.from_numpy(pts), torch.from_numpy(mask))


@dataclass
class SkillBatch:
    """One step φ_t(a_t) for a batch: ``skill`` (B,) index in SKILLS order, ``target`` (B,)
    object index, ``params`` (B, PARAM_DIM) in the skill's own units, zero-padded."""

    skill: torch.Tensor
    target: torch.Tensor
    params: torch.Tensor


@dataclass
class RelationProbs:
    """Predicted relation probabilities: ``unary`` (B, N, 3), ``binary`` (B, N, N, 9)
    [subject, object, predicate], vocabulary order. Padded objects and the diagonal are 0."""

    unary: torch.Tensor
    binary: torch.Tensor

    def prob(self, predicate: str, subject: int, obj: int | None = None) -> torch.Tensor:
        """(B,) probability that ``predicate(subject[, obj])`` holds."""
        if obj is None:
            if predicate not in UNARY_RELATIONS:
                raise ValueError(f"{predicate!r} is not a unary relation ({', '.join(UNARY_RELATIONS)})")
            return self.unary[:, subject, UNARY_RELATIONS.index(predicate)]
        if predicate not in BINARY_RELATIONS:
            raise ValueError(f"{predicate!r} is not a binary relation ({', '.join(BINARY_RELATIONS)})")
        return self.binary[:, subject, obj, BINARY_RELATIONS.index(predicate)]


# --------------------------------------------------------------------------- interface
class SkillEffectModel(nn.Module, abc.ABC):
    """What the planner, learner and nodes need from a skill-effect model Γ (A.11.1).

    A latent is a tensor (B, N, D) whose batch dimension may be expanded (the planner
    encodes O_0 once and expands it to its K shooting samples)."""

    @abc.abstractmethod
    def encode(self, obs: Observation) -> torch.Tensor:
        """Enc: O_t → X_t (B, N, D)."""

    @abc.abstractmethod
    def detect(self, latent: torch.Tensor, mask: torch.Tensor) -> RelationProbs:
        """Dec_u, Dec_b: X_t → relation probabilities."""

    @abc.abstractmethod
    def step(self, latent: torch.Tensor, mask: torch.Tensor, skill: SkillBatch) -> torch.Tensor:
        """Dyn: (X_t, φ_t(a_t)) → X_{t+1}."""

    def rollout(self, obs: Observation, skills: Sequence[SkillBatch],
                latent: torch.Tensor | None = None) -> list[RelationProbs]:
        """Γ(O_0, φ_{1:H}, a_{1:H}): relation probabilities after each of the H steps.

        ``latent`` (already encoded, possibly expanded) skips the encoder."""
        x = self.encode(obs) if latent is None else latent
        mask = obs.mask
        if mask.shape[0] != x.shape[0]:
            mask = mask.expand(x.shape[0], -1)
        out = []
        for s in skills:
            x = self.step(x, mask, s)
            out.append(self.detect(x, mask))
        return out


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`PointsToPlansModel`; defaults are paper 000 A.11.2.

    Stored in every checkpoint; a checkpoint loads only into the config it was saved with."""

    arch: str = "points2plans"
    max_objects: int = 16
    sa_npoints: tuple[int, ...] = (128, 16)         # sampled centroids of SA layers 1, 2
    sa_nsamples: tuple[int, ...] = (8, 16)          # neighbours per centroid
    sa_radii: tuple[float, ...] = (0.1, 0.2, 0.4)   # bandwidths; last is the group-all layer's
    sa_widths: tuple[int, ...] = (32, 64, 128)      # MLP output widths (kernel size 1)
    id_dim: int = 128                               # sinusoidal object identity ID_i
    skill_hidden: int = 128                         # MLP_para: 2 layers × 128, ReLU
    d_model: int = 256                              # = point feature (128) + ID (128)
    n_layers: int = 2
    n_heads: int = 2
    ff_dim: int = 512                               # transformer feed-forward width (paper: unstated)
    dec_hidden: int = 64
    unary: tuple[str, ...] = UNARY_RELATIONS
    binary: tuple[str, ...] = BINARY_RELATIONS
    skills: tuple[str, ...] = tuple(SKILLS)
    # Not A.11.2 (off in the shipped model): Dyn also sees each object's decoded relations to
    # and from the skill's target plus a target flag (PointsToPlansModel.target_context).
    target_relations: bool = False

    def __post_init__(self):
        if self.sa_widths[-1] + self.id_dim != self.d_model:
            raise ValueError(f"point feature {self.sa_widths[-1]} + id {self.id_dim} must equal d_model {self.d_model}")
        if len(self.sa_npoints) != 2 or len(self.sa_nsamples) != 2 or len(self.sa_radii) != 3 or len(self.sa_widths) != 3:
            raise ValueError("the encoder has exactly two sampled set-abstraction layers and one group-all layer")

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_json(d: dict) -> "ModelConfig":
        known = {f for f in ModelConfig.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}")
        return ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


# --------------------------------------------------------------------------- encoder
def farthest_point_sample(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Indices (M, npoint) of deterministic farthest-point sampling of (M, P, 3), starting at
    point 0. Indices carry no gradient; the gathered coordinates do."""
    m, p, _ = xyz.shape
    if npoint >= p:
        # Fewer points than centroids: take all, cycling, so shapes stay fixed.
        return (torch.arange(npoint, device=xyz.device) % p).expand(m, npoint)
    with torch.no_grad():
        idx = torch.zeros(m, npoint, dtype=torch.long, device=xyz.device)
        dist = torch.full((m, p), float("inf"), device=xyz.device)
        far = torch.zeros(m, dtype=torch.long, device=xyz.device)
        rows = torch.arange(m, device=xyz.device)
        for i in range(npoint):
            idx[:, i] = far
            d = ((xyz - xyz[rows, far][:, None]) ** 2).sum(-1)
            dist = torch.minimum(dist, d)
            far = dist.argmax(-1)
    return idx


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (M, P, C), idx (M, ...) → (M, ..., C)."""
    m = x.shape[0]
    flat = idx.reshape(m, -1)
    out = torch.gather(x, 1, flat[..., None].expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])


class SetAbstraction(nn.Module):
    """One PointNet++-style set abstraction (the simplified PointConv layer of A.11.2).

    FPS picks ``npoint`` centroids, each groups its ``nsample`` nearest points limited to
    radius ``radius`` (out-of-ball neighbours are replaced by the nearest one, as in ball
    query), and a kernel-size-1 MLP over [relative position / radius ⊕ features] is
    max-pooled. ``npoint=None`` is the group-all layer."""

    def __init__(self, npoint: int | None, nsample: int | None, radius: float, in_ch: int, out_ch: int):
        super().__init__()
        self.npoint, self.nsample, self.radius = npoint, nsample, radius
        self.mlp = nn.Sequential(nn.Linear(3 + in_ch, out_ch), nn.ReLU())

    def forward(self, xyz: torch.Tensor, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.npoint is None:
            center = xyz.mean(1, keepdim=True)
            rel = (xyz - center) / self.radius
            h = self.mlp(torch.cat([rel, feat], -1)).max(1).values
            return center, h[:, None]
        cidx = farthest_point_sample(xyz, self.npoint)
        new_xyz = _gather(xyz, cidx)                                  # (M, S, 3)
        with torch.no_grad():
            d = torch.cdist(new_xyz, xyz)                              # (M, S, P)
            k = min(self.nsample, xyz.shape[1])
            dk, nidx = d.topk(k, dim=-1, largest=False)               # sorted: nidx[..., 0] nearest
            nidx = torch.where(dk > self.radius, nidx[..., :1], nidx)
        nbr = _gather(xyz, nidx)                                      # (M, S, k, 3)
        rel = (nbr - new_xyz[:, :, None]) / self.radius
        h = self.mlp(torch.cat([rel, _gather(feat, nidx)], -1)).max(2).values
        return new_xyz, h


class PointEncoder(nn.Module):
    """Enc (A.11.2): per-segment point cloud (P, 3) → P_i (128-d), batched over all objects.

    The input feature of each point is its absolute position (3 channels, so the first MLP
    sees 3 + 3 = 6 inputs as in the paper): relations depend on where objects are, not
    only on their shape."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.sa_widths
        self.sa1 = SetAbstraction(cfg.sa_npoints[0], cfg.sa_nsamples[0], cfg.sa_radii[0], 3, w[0])
        self.sa2 = SetAbstraction(cfg.sa_npoints[1], cfg.sa_nsamples[1], cfg.sa_radii[1], w[0], w[1])
        self.sa3 = SetAbstraction(None, None, cfg.sa_radii[2], w[1], w[2])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        xyz, feat = self.sa1(points, points)
        xyz, feat = self.sa2(xyz, feat)
        _, feat = self.sa3(xyz, feat)
        return feat[:, 0]


def sinusoidal_encoding(n: int, dim: int) -> torch.Tensor:
    """The standard transformer positional encoding (Vaswani et al.; PyTorch tutorial [80]):
    row i is ID_i, the identity of object i (A.11.2)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- model
class PointsToPlansModel(SkillEffectModel):
    """The A.11.2 skill-effect model (Points2Plans-style) behind :class:`SkillEffectModel`."""

    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        if cfg.skills != tuple(SKILLS):
            raise ValueError(f"config skills {cfg.skills} differ from the vocabulary {tuple(SKILLS)}")
        self.cfg = cfg
        self.encoder = PointEncoder(cfg)
        self.register_buffer("ids", sinusoidal_encoding(cfg.max_objects, cfg.id_dim), persistent=False)
        # Parameters are normalised to [-1, 1] by their vocabulary box; the skill's one-hot
        # is concatenated so one MLP_para serves every primitive (a_k spaces differ per φ_k).
        # Padded dimensions get the box [0, 1] (no division by zero) and are zeroed after.
        boxes = [padded_parameter_box(name, pad_low=0.0, pad_high=1.0) for name in SKILLS]
        self.register_buffer("param_lo", torch.tensor([lo for lo, _ in boxes]), persistent=False)
        self.register_buffer("param_hi", torch.tensor([hi for _, hi in boxes]), persistent=False)
        h = cfg.skill_hidden
        self.skill_mlp = nn.Sequential(nn.Linear(len(SKILLS) + PARAM_DIM, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        if h + cfg.id_dim != cfg.d_model:
            raise ValueError("skill_hidden + id_dim must equal d_model")
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.ff_dim, dropout=0.0, batch_first=True)
        self.dynamics = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        d = cfg.dec_hidden
        self.dec_pos = _mlp([cfg.d_model, d, d, d, 3])
        self.dec_unary = _mlp([cfg.d_model, d, d, len(cfg.unary)])
        self.dec_binary = _mlp([2 * cfg.d_model, d, d, d, len(cfg.binary)])
        if cfg.target_relations:
            self.target_proj = nn.Linear(2 * len(cfg.binary) + 1, cfg.d_model)

    # -- interface
    def encode(self, obs: Observation) -> torch.Tensor:
        b, n, p, _ = obs.points.shape
        if n > self.cfg.max_objects:
            raise ValueError(f"{n} objects exceed the model's max_objects={self.cfg.max_objects}")
        # Only real objects go through the point encoder: padded slots are most of a batch
        # (a scene has 3-9 segments, max_objects is 16) and would be zeroed anyway.
        real = obs.mask.reshape(-1)
        feat = obs.points.new_zeros(b * n, self.cfg.sa_widths[-1])
        if bool(real.any()):
            feat = feat.index_put((real.nonzero()[:, 0],), self.encoder(obs.points.reshape(b * n, p, 3)[real]))
        ids = self.ids[:n].expand(b, n, -1)
        return torch.cat([feat.reshape(b, n, -1), ids], -1) * obs.mask[..., None]

    def detect(self, latent: torch.Tensor, mask: torch.Tensor) -> RelationProbs:
        u, bl = self.relation_logits(latent)
        return RelationProbs(torch.sigmoid(u) * mask[..., None], torch.sigmoid(bl) * self._pair_mask(mask)[..., None])

    def step(self, latent: torch.Tensor, mask: torch.Tensor, skill: SkillBatch) -> torch.Tensor:
        return latent + self.delta(latent, mask, skill)

    # -- parts used by training
    def skill_token(self, skill: SkillBatch) -> torch.Tensor:
        """AL = MLP_para(a) ⊕ ID_target (A.11.2), (B, 256)."""
        a = normalise(skill.params, self.param_lo[skill.skill], self.param_hi[skill.skill])
        dims = torch.tensor([s.dim for s in SKILLS.values()], device=a.device)[skill.skill]
        a = a * (torch.arange(PARAM_DIM, device=a.device)[None] < dims[:, None])   # padded dims → 0
        onehot = F.one_hot(skill.skill, len(SKILLS)).to(a.dtype)
        if (skill.target < 0).any() or (skill.target >= self.cfg.max_objects).any():
            raise ValueError("skill target index out of range")
        return torch.cat([self.skill_mlp(torch.cat([onehot, a], -1)), self.ids[skill.target]], -1)

    def delta(self, latent: torch.Tensor, mask: torch.Tensor, skill: SkillBatch) -> torch.Tensor:
        """Dyn: δX_t (B, N, 256) from the object tokens plus the skill token."""
        b, n, _ = latent.shape
        x = latent + self.target_context(latent, mask, skill.target) if self.cfg.target_relations else latent
        tokens = torch.cat([x, self.skill_token(skill)[:, None]], 1)
        pad = torch.cat([~mask, torch.zeros(b, 1, dtype=torch.bool, device=mask.device)], 1)
        out = self.dynamics(tokens, src_key_padding_mask=pad)
        return out[:, :n] * mask[..., None]

    def target_context(self, latent: torch.Tensor, mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, N, D): each object's decoded relations to and from the skill's target, and a
        target flag, projected into the token space (inputs: no gradient into the decoder)."""
        b, n, d = latent.shape
        xt = latent[torch.arange(b, device=latent.device), target][:, None].expand(b, n, d)
        with torch.no_grad():
            rel = torch.sigmoid(torch.cat([self.dec_binary(torch.cat([latent, xt], -1)),
                                           self.dec_binary(torch.cat([xt, latent], -1))], -1))
        flag = F.one_hot(target, n).to(latent.dtype)[..., None]
        return self.target_proj(torch.cat([rel * (1 - flag), flag], -1)) * mask[..., None]

    def relation_logits(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = latent.shape
        u = self.dec_unary(latent)
        pair = torch.cat([latent[:, :, None].expand(b, n, n, d), latent[:, None].expand(b, n, n, d)], -1)
        return u, self.dec_binary(pair)

    @staticmethod
    def _pair_mask(mask: torch.Tensor) -> torch.Tensor:
        n = mask.shape[1]
        eye = torch.eye(n, dtype=torch.bool, device=mask.device)
        return (mask[:, :, None] & mask[:, None, :] & ~eye).to(torch.float32)


# --------------------------------------------------------------------------- losses
#: L_pos = b·sqrt(a·e) with a = 12, b = 5 (A.11.2, from Points2Plans [2]).
POS_LOSS_A = 12.0
POS_LOSS_B = 5.0


def _masked_bce(logits, target, weight):
    l = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return (l * weight).sum() / weight.sum().clamp_min(1.0)


def compute_losses(model: PointsToPlansModel, batch: dict[str, torch.Tensor],
                   return_latent: bool = False):
    """The four A.11.2 losses and their sum ``total`` (and X_t = Enc(O_t) when
    ``return_latent``, for a caller adding its own term without encoding again).

    ``batch``: points_t, points_t1 (B,N,P,3); mask (B,N); optional seen_t1 (B,N); skill, target (B,); params (B,3);
    unary_t, unary_t1 (B,N,3); binary_t, binary_t1 (B,N,N,9); pos_t, pos_t1 (B,N,3).

    * detection  CE(Dec(X_t), R_t)
    * regularization  ||X_{t+1} − X'_{t+1}||², X_{t+1} = Enc(O_{t+1}), X'_{t+1} = Dyn(X_t, φ(a)),
      averaged over the 256 latent features and over real objects. (Summed over features it
      was ~98 % of the total loss at the start of training and swamped the relation terms;
      the mean keeps the four terms on comparable scales.)
    * pos  b·sqrt(a·mean_i ||δp_i − (p_{t+1} − p_t)_i||² + ε): the paper's b·sqrt(a·||·||)
      read as a root-mean-square error (ε keeps the gradient finite at zero error)
    * prediction  CE(Dec(X'_{t+1}), R_{t+1})
    """
    mask = batch["mask"]
    m = mask.to(torch.float32)
    x_t = model.encode(Observation(batch["points_t"], mask))
    x_t1 = model.encode(Observation(batch["points_t1"], mask))
    skill = SkillBatch(batch["skill"], batch["target"], batch["params"])
    dx = model.delta(x_t, mask, skill)
    x_pred = x_t + dx
    pm = model._pair_mask(mask)
    u, bl = model.relation_logits(x_t)
    det = _masked_bce(u, batch["unary_t"], m[..., None].expand_as(u)) + \
        _masked_bce(bl, batch["binary_t"], pm[..., None].expand_as(bl))
    u1, bl1 = model.relation_logits(x_pred)
    pred = _masked_bce(u1, batch["unary_t1"], m[..., None].expand_as(u1)) + \
        _masked_bce(bl1, batch["binary_t1"], pm[..., None].expand_as(bl1))
    # segments unseen in O_t+1 (batch["seen_t1"] False, train.load_transitions) have no Enc(O_t+1)
    m1 = m if "seen_t1" not in batch else (mask & batch["seen_t1"]).to(torch.float32)
    reg = (((x_t1 - x_pred) ** 2).mean(-1) * m1).sum() / m1.sum().clamp_min(1.0)
    dp = model.dec_pos(dx)
    err = (((dp - (batch["pos_t1"] - batch["pos_t"])) ** 2).sum(-1) * m).sum() / m.sum().clamp_min(1.0)
    pos = POS_LOSS_B * torch.sqrt(POS_LOSS_A * err + 1e-8)
    losses = {"detection": det, "regularization": reg, "pos": pos, "prediction": pred,
              "total": det + reg + pos + pred}
    return (losses, x_t) if return_latent else losses


def build_model(cfg: ModelConfig) -> SkillEffectModel:
    """The model class a config names (the registry other architectures join)."""
    if cfg.arch == "points2plans":
        return PointsToPlansModel(cfg)
    raise ValueError(f"unknown skill-effect architecture {cfg.arch!r}; known: points2plans")
