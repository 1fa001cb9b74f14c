"""Image segmentation backends: ``yolo_seg`` (ultralytics YOLO) and ``sam`` (segment-anything).

Both read an RGB-D :class:`~f2p_perception.segmentation.SensorFrame` (the colour image and the
organised cloud made from the registered depth image, :func:`~f2p_perception.segmentation.rgbd_frame`)
and turn instance masks into objects with :func:`~f2p_perception.segmentation.objects_from_masks`
(each mask's points in the base frame, class, score, gravity-aligned box). Paper 000 §3
segments with YOLO and SAM; here:

:class:`YoloSegmenter`  an ultralytics segmentation model (weights from a local file, nothing
                        downloads) predicts masks at the image's resolution
                        (``retina_masks``), classes and confidences. Its class names must be
                        object classes of the vocabulary. The shipped model
                        (:func:`shipped_yolo_weights`, how it was made in ``models/README.md``)
                        was trained by ``f2p-train-yolo-seg`` on images the simulator rendered.
:class:`SamSegmenter`   segment-anything (``SamPredictor``) refines masks from box prompts: the
                        segments of another backend (``geometric`` by default, or ``yolo_seg``)
                        projected into the image, each prompt's class kept, its score times
                        SAM's predicted IoU. Weights from a local path: an official checkpoint
                        (``model_type`` ``vit_b`` / ``vit_l`` / ``vit_h``) or one saved by
                        :func:`save_sam` with its architecture (smaller or fine-tuned models).

**No pickles.** ultralytics' own ``.pt`` files are pickled Python objects (``YOLO(path)`` runs
``torch.load(weights_only=False)``: a planted file runs its code in the loading process, issue
43). f2p's YOLO weights are f2p's one weights file (``f2p_common.weights``) of format
:data:`YOLO_FORMAT`: the architecture (ultralytics' model dict) and class names as JSON, the
weights as tensors, loaded with ``weights_only=True`` (:func:`load_yolo`; :func:`save_yolo`
writes one). SAM's weights load weights-only too. Anything else is refused.

ultralytics looks things up on the network on import and when plotting; :func:`ultralytics_offline`
keeps it local. Plain Python, no ROS; torch threads are bounded by the caller.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from f2p_common.interfaces import PointCloudError, SegmentedObject
from f2p_common.vocabulary import OBJECT_CLASSES
from f2p_perception.segmentation import SEGMENTERS, Segmenter, SensorFrame, objects_from_masks

#: The YOLO segmentation model shipped with f2p_perception (package data ``models/``).
SHIPPED_YOLO = "yolo_seg_sim.pt"
#: Format of f2p's YOLO weights files (``f2p_common.weights``).
YOLO_FORMAT = "f2p-yolo-seg/1"


def ultralytics_offline(config_dir: str | None = None) -> Path:
    """Keep ultralytics off the network (``YOLO_OFFLINE``, settings ``sync`` off) with its settings in
    ``config_dir`` (default ``$YOLO_CONFIG_DIR`` or ``~/.cache/f2p/ultralytics``); call before
    importing it. Returns the settings folder."""
    folder = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or Path.home() / ".cache" / "f2p" / "ultralytics")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_CONFIG_DIR"] = str(folder)
    os.environ["YOLO_OFFLINE"] = "1"
    from ultralytics.utils import SETTINGS
    if SETTINGS.get("sync", True):
        SETTINGS.update({"sync": False})
    return folder


def shipped_yolo_weights() -> Path:
    """Path of the shipped YOLO segmentation model (ResourceNotFoundError when the workspace is not built)."""
    from f2p_common.resources import share_path
    return share_path("f2p_perception", "models", SHIPPED_YOLO)


def save_yolo(path: str | os.PathLike, model, version: str, training: dict | None = None) -> str:
    """Write an ultralytics segmentation model (``YOLO`` or its ``SegmentationModel``) as an f2p
    weights file (module docstring), its floating-point weights in half precision as ultralytics'
    own stripped checkpoints keep them; returns the file's SHA-256."""
    from f2p_common.weights import write_weights_file
    net = getattr(model, "model", model)
    meta = {"architecture": dict(net.yaml), "names": {str(k): v for k, v in net.names.items()}, "version": version,
            "training": training or {}}
    weights = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    return write_weights_file(path, YOLO_FORMAT, meta, weights)


def load_yolo(path: str | os.PathLike):
    """The ``ultralytics.YOLO`` segmentation model of an f2p YOLO weights file, loaded weights-only:
    the architecture is built from its JSON, the tensors loaded into it (strict).
    ``f2p_common.weights.CheckpointError`` for anything else: a pickled ``.pt`` included."""
    import tempfile

    import yaml
    from f2p_common.weights import CheckpointError, read_weights_file
    meta, sd = read_weights_file(path, YOLO_FORMAT)
    try:
        names = {int(k): str(v) for k, v in meta["names"].items()}
        architecture = {**meta["architecture"], "nc": len(names)}
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: malformed YOLO metadata ({e})") from None
    ultralytics_offline()
    from ultralytics import YOLO
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / f"{Path(str(architecture.get('yaml_file', 'yolo-seg.yaml'))).stem}.yaml"
        spec.write_text(yaml.safe_dump(architecture))
        try:
            model = YOLO(str(spec), task="segment")
            model.model.load_state_dict(sd, strict=True)
        except Exception as e:                      # an architecture ultralytics cannot build, or weights that do not fit
            raise CheckpointError(f"{path}: the weights do not build a YOLO segmentation model ({e})") from None
    model.model.names = names
    model.model.eval()
    return model


def _torch_device(device: str) -> str:
    import torch
    if device in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class YoloSegmenter(Segmenter):
    """ultralytics YOLO instance segmentation (module docstring). ``weights``: a local ``.pt`` ('' =
    the shipped model); ``confidence``: the least score kept; ``imgsz``: the inference size (the
    long side, a multiple of 32; the shipped model was trained at 480)."""

    name = "yolo_seg"
    needs = ("rgb", "depth", "intrinsics")

    def __init__(self, min_points: int = 10, weights: str = "", confidence: float = 0.4, iou: float = 0.5,
                 imgsz: int = 480, max_det: int = 40, device: str = "auto"):
        if not 0.0 <= confidence <= 1.0 or not 0.0 < iou <= 1.0 or imgsz % 32 or max_det < 1:
            raise ValueError(f"confidence in [0, 1], iou in (0, 1], imgsz a multiple of 32 and max_det >= 1; got "
                             f"{confidence}, {iou}, {imgsz}, {max_det}")
        from f2p_common.weights import CheckpointError
        path = Path(weights) if weights else shipped_yolo_weights()
        if not path.is_file():
            raise ValueError(f"no YOLO weights at {path}: give a local f2p YOLO weights file (nothing is downloaded)")
        try:
            self.model = load_yolo(path)
        except CheckpointError as e:                         # a corrupt, pickled or foreign file: say which
            raise ValueError(f"cannot load YOLO weights {path}: {e} (f2p loads only its own weights-only format: "
                             "convert a trusted ultralytics .pt with f2p_perception.image_segmenters.save_yolo)") from None
        if self.model.task != "segment":
            raise ValueError(f"{path} is a YOLO {self.model.task} model; the yolo_seg backend needs a segmentation model")
        unknown = sorted(set(self.model.names.values()) - set(OBJECT_CLASSES))
        if unknown:
            raise ValueError(f"{path} predicts classes {unknown} that are not object classes of the vocabulary "
                             f"({', '.join(OBJECT_CLASSES)})")
        self.min_points, self.weights = min_points, path
        self.options = dict(conf=confidence, iou=iou, imgsz=imgsz, max_det=max_det, retina_masks=True, verbose=False,
                            device=_torch_device(device))

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
        """(masks (N, H, W) bool, classes, scores) of an RGB image."""
        r = self.model.predict(np.ascontiguousarray(rgb[..., ::-1]), **self.options)[0]   # ultralytics takes BGR
        h, w = rgb.shape[:2]
        if r.masks is None or len(r.boxes) == 0:
            return np.zeros((0, h, w), bool), [], np.zeros(0)
        masks = r.masks.data.cpu().numpy() > 0.5
        if masks.shape[1:] != (h, w):                        # retina masks are the image's size; guard anyway
            raise PointCloudError(f"YOLO returned {masks.shape[1:]} masks for a {h}x{w} image")
        classes = [self.model.names[int(c)] for c in r.boxes.cls.cpu().numpy()]
        return masks, classes, r.boxes.conf.cpu().numpy().astype(float)

    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        if frame.rgb is None or frame.image_size is None:
            raise PointCloudError("the yolo_seg backend needs the colour and depth images (input: rgbd), not a cloud")
        masks, classes, scores = self.detect(frame.rgb)
        return objects_from_masks(frame, masks, classes, scores, self.min_points)


# ---------------------------------------------------------------------------- SAM
def build_sam(architecture: dict, state_dict: dict | None = None):
    """A segment-anything ``Sam`` of ``architecture`` (``encoder_embed_dim``, ``encoder_depth``,
    ``encoder_num_heads``, ``encoder_global_attn_indexes``, optional ``image_size`` (1024),
    ``patch_size`` (16), ``window_size`` (14), ``prompt_embed_dim`` (256), ``decoder_mlp_dim``
    (2048)): the official builder's layout (segment_anything.build_sam) with its sizes open."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    a = {"image_size": 1024, "patch_size": 16, "window_size": 14, "prompt_embed_dim": 256, "decoder_mlp_dim": 2048,
         **architecture}
    embed = a["prompt_embed_dim"]
    grid = a["image_size"] // a["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(depth=a["encoder_depth"], embed_dim=a["encoder_embed_dim"], img_size=a["image_size"],
                                      mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      num_heads=a["encoder_num_heads"], patch_size=a["patch_size"], qkv_bias=True,
                                      use_rel_pos=True, global_attn_indexes=tuple(a["encoder_global_attn_indexes"]),
                                      window_size=a["window_size"], out_chans=embed),
        prompt_encoder=PromptEncoder(embed_dim=embed, image_embedding_size=(grid, grid),
                                     input_image_size=(a["image_size"], a["image_size"]), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=embed, iou_head_depth=3, iou_head_hidden_dim=256,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=embed, mlp_dim=a["decoder_mlp_dim"],
                                                               num_heads=8)),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    if state_dict is not None:
        sam.load_state_dict(state_dict)
    return sam.eval()


def save_sam(sam, architecture: dict, path: str | Path) -> None:
    """Write ``sam``'s weights with its ``architecture`` (:func:`build_sam`) for :func:`load_sam`."""
    import torch
    torch.save({"f2p_sam_architecture": dict(architecture), "state_dict": sam.state_dict()}, str(path))


def load_sam(checkpoint: str | Path, model_type: str = "vit_b"):
    """A ``Sam`` from a local file: an official checkpoint of ``model_type`` (``vit_b``, ``vit_l``,
    ``vit_h``: segment_anything's registry) or a :func:`save_sam` file (its own architecture).
    ValueError for a missing or unreadable file."""
    import torch
    from segment_anything import sam_model_registry

    path = Path(checkpoint)
    if not path.is_file():
        raise ValueError(f"no SAM checkpoint at {path}: give a local file (nothing is downloaded)")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(data, dict) and "f2p_sam_architecture" in data:
            return build_sam(data["f2p_sam_architecture"], data["state_dict"])
        if model_type not in sam_model_registry:
            raise ValueError(f"unknown SAM model_type {model_type!r}; known: {', '.join(sam_model_registry)}")
        sam = sam_model_registry[model_type](checkpoint=None)
        sam.load_state_dict(data)
        return sam.eval()
    except (RuntimeError, KeyError, OSError, EOFError, pickle.UnpicklingError) as e:   # foreign, cut or pickled code
        raise ValueError(f"cannot load SAM checkpoint {path} as {model_type} (weights-only: {type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None


class SamSegmenter(Segmenter):
    """segment-anything masks from box prompts (module docstring). ``prompts``: the backend whose
    segments prompt SAM (``geometric`` or ``yolo_seg``), built with ``prompt_options``;
    ``box_margin``: pixels added around each prompt box."""

    name = "sam"
    needs = ("rgb", "depth", "intrinsics")

    def __init__(self, min_points: int = 10, checkpoint: str = "", model_type: str = "vit_b",
                 prompts: str = "geometric", prompt_options: dict | None = None, box_margin: int = 4,
                 device: str = "auto"):
        from segment_anything import SamPredictor

        if prompts not in ("geometric", "yolo_seg"):
            raise ValueError(f"SAM prompts come from 'geometric' or 'yolo_seg', not {prompts!r}")
        if not checkpoint:
            raise ValueError("the sam backend needs a local checkpoint (parameter model_path): SAM's weights are "
                             "not shipped (vit_b is 375 MB)")
        self.device = _torch_device(device)
        self.predictor = SamPredictor(load_sam(checkpoint, model_type).to(self.device))
        self.prompts = SEGMENTERS.make(prompts, min_points=min_points, **(prompt_options or {}))
        self.min_points, self.box_margin = min_points, box_margin

    def prompt_boxes(self, frame: SensorFrame, objects: list[SegmentedObject]) -> np.ndarray:
        """(N, 4) pixel boxes (x0, y0, x1, y1) around each object's points, ``box_margin`` wider,
        clipped to the image."""
        h, w = frame.image_size
        boxes = []
        for o in objects:
            uv = frame.project(o.points)
            uv = uv[np.isfinite(uv).all(axis=1)]
            if len(uv) == 0:
                boxes.append([0, 0, 0, 0])
                continue
            lo, hi = uv.min(axis=0) - self.box_margin, uv.max(axis=0) + self.box_margin
            boxes.append([max(lo[0], 0), max(lo[1], 0), min(hi[0], w - 1), min(hi[1], h - 1)])
        return np.asarray(boxes, np.float64).reshape(-1, 4)

    def segment(self, frame: SensorFrame) -> list[SegmentedObject]:
        import torch

        if frame.rgb is None or frame.image_size is None:
            raise PointCloudError("the sam backend needs the colour and depth images (input: rgbd), not a cloud")
        prompted = self.prompts.segment(frame)
        boxes = self.prompt_boxes(frame, prompted)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        prompted, boxes = [o for o, k in zip(prompted, keep) if k], boxes[keep]
        if not prompted:
            return []
        self.predictor.set_image(frame.rgb)
        with torch.no_grad():
            tb = self.predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32,
                                                                            device=self.device), frame.image_size)
            masks, iou, _ = self.predictor.predict_torch(point_coords=None, point_labels=None, boxes=tb,
                                                         multimask_output=False)
        masks = masks[:, 0].cpu().numpy()
        scores = [o.score * float(np.clip(q, 0.0, 1.0)) for o, q in zip(prompted, iou[:, 0].cpu().numpy())]
        return objects_from_masks(frame, masks, [o.label for o in prompted], scores, self.min_points)
