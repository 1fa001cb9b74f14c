"""Train the ``yolo_seg`` perception backend's model on rendered simulator images: :func:`train_yolo_seg`.

``train_yolo_seg(YoloTrainConfig) -> YoloTrainResult``; the command line ``f2p-train-yolo-seg``
builds the config from its arguments. The data is what ``f2p-render-seg-data``
(:mod:`f2p_datasets.image_data`) writes: RGB views of task scenes with the simulator's instance masks
and classes. The model is ultralytics' YOLO11n-seg architecture (``yolo11n-seg.yaml``) trained
from scratch (no pretrained weights can be downloaded here; an f2p YOLO weights file given as
``model`` is fine-tuned instead), with ultralytics' own augmentation, on the CPU unless a GPU
exists. The best-validation weights are written to ``<out>/yolo_seg_sim.pt`` in f2p's
weights-only YOLO format (``f2p_perception.image_segmenters.save_yolo``, ~6 MB: never a pickle)
next to ``<out>/report.json`` (the config, the dataset manifest, validation mask / box mAP, time).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable


@dataclass
class YoloTrainConfig:
    """Module docstring. ``threads``: torch threads on the CPU."""

    data: str                          # the dataset folder (with data.yaml)
    out: str
    model: str = "yolo11n-seg.yaml"
    epochs: int = 35
    imgsz: int = 480
    batch: int = 8
    patience: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 2

    def __post_init__(self):
        if self.epochs < 1 or self.batch < 1 or self.imgsz % 32:
            raise ValueError(f"epochs and batch must be >= 1 and imgsz a multiple of 32; got {self.epochs}, "
                             f"{self.batch}, {self.imgsz}")


@dataclass
class YoloTrainResult:
    weights: Path
    report: Path
    metrics: dict
    seconds: float
    size_bytes: int


def _font_for_plots(config_dir: Path) -> None:
    """ultralytics draws its training plots with Arial.ttf, fetched from the network when absent;
    matplotlib's DejaVuSans stands in (offline)."""
    target = config_dir / "Arial.ttf"
    if not target.exists():
        import matplotlib
        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


def train_yolo_seg(cfg: YoloTrainConfig, progress: Callable[[int, int, dict], None] | None = None) -> YoloTrainResult:
    """Train (module docstring); ``progress(epoch, epochs, metrics)`` after every epoch."""
    import torch

    from f2p_perception.image_segmenters import SHIPPED_YOLO, load_yolo, save_yolo, ultralytics_offline

    data = Path(cfg.data)
    if not (data / "data.yaml").is_file():
        raise ValueError(f"{data} has no data.yaml: render the data first (f2p-render-seg-data)")
    torch.set_num_threads(cfg.threads)
    _font_for_plots(ultralytics_offline())
    from ultralytics import YOLO

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    # an architecture yaml builds a new model; anything else is an f2p weights file, loaded weights-only
    model = YOLO(cfg.model, task="segment") if cfg.model.endswith(".yaml") else load_yolo(cfg.model)
    if progress is not None:
        model.add_callback("on_fit_epoch_end", lambda trainer: progress(
            min(trainer.epoch + 1, trainer.epochs), trainer.epochs, {k: round(float(v), 4) for k, v in trainer.metrics.items()}))
    device = "0" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device)
    t0 = time.perf_counter()
    model.train(data=str(data / "data.yaml"), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch, workers=0,
                device=device, patience=cfg.patience, seed=cfg.seed, deterministic=True, amp=False, plots=True,
                project=str(out.resolve()), name="run", exist_ok=True, verbose=False)
    seconds = time.perf_counter() - t0
    weights = out / SHIPPED_YOLO
    metrics = {k: round(float(v), 4) for k, v in model.trainer.metrics.items()}
    # after training, ultralytics holds its best-validation weights (run/weights/best.pt, which it
    # wrote and read back itself) in model.model: they go out in f2p's format
    save_yolo(weights, model, f"yolo_seg-{time.strftime('%Y%m%d-%H%M%S')}", {"config": asdict(cfg), "metrics": metrics})
    manifest = data / "manifest.json"
    report = out / "report.json"
    report.write_text(json.dumps({"config": asdict(cfg), "metrics": metrics, "seconds": round(seconds, 1),
                                  "device": device, "weights_bytes": weights.stat().st_size,
                                  "data": json.loads(manifest.read_text()) if manifest.exists() else None}, indent=1))
    return YoloTrainResult(weights, report, metrics, seconds, weights.stat().st_size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder written by f2p-render-seg-data")
    p.add_argument("--out", required=True)
    defaults = YoloTrainConfig("", "")
    p.add_argument("--model", default=defaults.model, help="architecture yaml (from scratch) or a local .pt to fine-tune")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--imgsz", type=int, default=defaults.imgsz)
    p.add_argument("--batch", type=int, default=defaults.batch)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", defaults.threads)))
    p.add_argument("--seed", type=int, default=defaults.seed)
    a = p.parse_args(argv)
    try:
        cfg = YoloTrainConfig(a.data, a.out, a.model, a.epochs, a.imgsz, a.batch, seed=a.seed, device=a.device,
                              threads=a.threads)
        result = train_yolo_seg(cfg, lambda e, n, m: print(f"[f2p-train-yolo-seg] epoch {e}/{n} mask mAP50 "
                                                           f"{m.get('metrics/mAP50(M)', float('nan')):.3f}", flush=True))
    except ValueError as e:
        print(f"f2p-train-yolo-seg: {e}", file=sys.stderr)
        return 2
    print(f"[f2p-train-yolo-seg] {result.weights} ({result.size_bytes / 1e6:.1f} MB) in {result.seconds / 60:.1f} min: "
          f"{json.dumps(result.metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
