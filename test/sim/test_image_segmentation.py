"""RGB-D frames and the image segmentation backends (yolo_seg, sam): the depth image
back-projected with CameraInfo onto the simulator's own ray-cast cloud, masks to objects, the
real ultralytics and segment-anything bindings on small random-weight models, the rendered
training data, and every bad RGB-D input refused with why."""
from __future__ import annotations

import numpy as np
import pytest

from f2p_common.interfaces import PointCloudError
from f2p_common.vocabulary import OBJECT_CLASSES
from f2p_perception.segmentation import depth_to_cloud, objects_from_masks, rgbd_frame
from f2p_sim.config import load_world_config
from f2p_sim.observation import ImageRenderer
from f2p_sim.robot import SimRobot


def render(task: str, n: int, seed: int):
    """A rendered task scene: the robot (organised cloud), its images and segmentation, the camera pose."""
    robot = SimRobot(load_world_config(), "front", organized=True)
    robot.reset_task(task, n, seed)
    renderer = ImageRenderer(robot.backend, robot.camera)
    try:
        images = renderer.render(segmentation=True)
    finally:
        renderer.close()
    pos, quat = robot.camera_pose()
    return robot, images, (*pos, *quat)


@pytest.fixture(scope="module")
def view():
    return render("transport", 3, 11)


def frame_of(robot, images, pose):
    return rgbd_frame(images["rgb"], images["depth"], robot.camera.ros_intrinsics, pose, "base_link",
                      "camera_color_optical_frame", info_size=(robot.camera.width, robot.camera.height))


def test_depth_image_back_projects_onto_the_cameras_own_cloud(view):
    robot, images, pose = view
    frame = frame_of(robot, images, pose)
    truth = robot.camera_cloud()                                 # ray cast, organised, base_link
    assert frame.cloud.height == truth.height == 480 and len(frame.cloud.points) == len(truth.points)
    both = np.isfinite(frame.cloud.points).all(1) & np.isfinite(truth.points).all(1)
    assert both.mean() > 0.5
    err = np.linalg.norm(frame.cloud.points[both] - truth.points[both], axis=1)
    assert np.percentile(err, 99) < 1e-3, np.percentile(err, 99)     # same pixels, same points: K and pose right
    # and back: the points project onto their own pixels
    idx = np.flatnonzero(both)[::997]
    uv = frame.project(frame.cloud.points[idx])
    np.testing.assert_allclose(uv, np.stack([idx % 640, idx // 640], 1), atol=0.05)


def test_masks_select_each_objects_points(view):
    robot, images, pose = view
    frame = frame_of(robot, images, pose)
    seg = images["segmentation"]
    ks = [k for k in np.unique(seg[seg >= 0]) if (seg == k).sum() > 50]
    labels = [robot.scene.labels[k] for k in ks]
    objects = objects_from_masks(frame, np.stack([seg == k for k in ks]), labels, [0.9] * len(ks))
    assert [o.label for o in objects] == labels
    truth = robot.camera_cloud()
    for k, o in zip(ks, objects):
        true_pts = truth.points[truth.instance == k]
        box = robot.scene.boxes[k]
        inside = (np.abs(o.points - box.center) <= box.size / 2 + 0.01).all(axis=1)
        assert inside.mean() > 0.97, (o.label, inside.mean())        # eroded border: nothing from behind
        assert len(o.points) > 0.5 * len(true_pts)
        assert o.box.orientation[0] == o.box.orientation[1] == 0.0        # gravity-aligned (REP-103 z up)


def test_bad_rgbd_input_is_refused_with_why(view):
    robot, images, pose = view
    k = robot.camera.ros_intrinsics
    with pytest.raises(PointCloudError, match="registered to the colour camera"):
        rgbd_frame(images["rgb"][::2, ::2], images["depth"], k, pose, "base_link")
    with pytest.raises(PointCloudError, match="no CameraInfo"):
        rgbd_frame(images["rgb"], images["depth"], None, pose, "base_link")
    with pytest.raises(PointCloudError, match="no valid return"):
        rgbd_frame(images["rgb"], np.full((480, 640), np.nan, np.float32), k, pose, "base_link")
    with pytest.raises(PointCloudError, match="no valid return"):
        rgbd_frame(images["rgb"], np.zeros((480, 640), np.float32), k, pose, "base_link")
    with pytest.raises(PointCloudError, match="no transform from the camera's frame 'cam' to 'base_link'"):
        rgbd_frame(images["rgb"], images["depth"], k, None, "base_link", "cam")
    with pytest.raises(PointCloudError, match="CameraInfo is for 320x240"):
        rgbd_frame(images["rgb"], images["depth"], k, pose, "base_link", info_size=(320, 240))
    with pytest.raises(PointCloudError, match="usable K"):
        depth_to_cloud(images["depth"], (0.0, 0.0, 320.0, 240.0))
    frame = frame_of(robot, images, pose)
    with pytest.raises(PointCloudError, match="masks must be"):
        objects_from_masks(frame, np.zeros((1, 240, 320), bool), ["bin"], [1.0])


# ---------------------------------------------------------------------------- yolo_seg
@pytest.fixture(scope="module")
def yolo_weights(tmp_path_factory):
    """A random-weight YOLO11n-seg with the vocabulary's classes, in f2p's weights-only YOLO format."""
    from f2p_perception.image_segmenters import save_yolo, ultralytics_offline
    ultralytics_offline(str(tmp_path_factory.mktemp("ultralytics")))
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import SegmentationModel
    torch.manual_seed(0)
    model = YOLO("yolo11n-seg.yaml", task="segment")
    model.model = SegmentationModel("yolo11n-seg.yaml", nc=len(OBJECT_CLASSES), verbose=False)
    model.model.names, model.model.task = dict(enumerate(OBJECT_CLASSES)), "segment"
    path = tmp_path_factory.mktemp("yolo") / "random.pt"
    save_yolo(path, model, "random")
    return path


def test_yolo_seg_backend_runs_the_real_model_from_a_local_file(view, yolo_weights):
    from f2p_perception.segmentation import SEGMENTERS
    robot, images, pose = view
    seg = SEGMENTERS.make("yolo_seg", min_points=5, weights=str(yolo_weights), confidence=0.0, max_det=5,
                         device="cpu")
    masks, classes, scores = seg.detect(images["rgb"])
    assert masks.shape[1:] == (480, 640) and len(classes) == len(scores) <= 5
    assert set(classes) <= set(OBJECT_CLASSES)
    objects = seg.segment(frame_of(robot, images, pose))
    for o in objects:
        assert o.label in OBJECT_CLASSES and np.isfinite(o.points).all() and np.isfinite(o.box.size).all()
    with pytest.raises(PointCloudError, match="colour and depth images"):
        seg.segment(type(frame_of(robot, images, pose))(robot.camera_cloud()))


def test_yolo_seg_backend_refuses_missing_corrupt_and_foreign_weights(tmp_path, yolo_weights):
    from f2p_perception.image_segmenters import YoloSegmenter
    with pytest.raises(ValueError, match="no YOLO weights"):
        YoloSegmenter(weights=str(tmp_path / "absent.pt"))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(yolo_weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot load YOLO weights"):
        YoloSegmenter(weights=str(cut))
    from ultralytics import YOLO
    from f2p_perception.image_segmenters import save_yolo
    coco = tmp_path / "coco_classes.pt"
    save_yolo(coco, YOLO("yolo11n-seg.yaml", task="segment"), "coco")     # COCO's 80 class names
    with pytest.raises(ValueError, match="not object classes of the vocabulary"):
        YoloSegmenter(weights=str(coco))
    pickled = tmp_path / "ultralytics.pt"
    YOLO("yolo11n-seg.yaml", task="segment").save(str(pickled))         # ultralytics' own pickled file
    with pytest.raises(ValueError, match="weights-only"):
        YoloSegmenter(weights=str(pickled))


def test_rendered_training_data_is_ultralytics_layout_with_the_simulators_masks(tmp_path):
    from f2p_datasets.image_data import ImageDataConfig, make_image_dataset
    cfg = ImageDataConfig(str(tmp_path / "data"), scenes_per_cell=1, skills_per_scene=0, cameras=("front",),
                          tasks=("transport",), object_counts=(3,), val_fraction=0.0, layouts=("paper", "real_scale"))
    result = make_image_dataset(cfg)
    labels = sorted((tmp_path / "data" / "labels" / "train").glob("*.txt"))
    assert result.views == {"train": 2, "val": 0} and len(labels) == 2 and result.rendered == 2
    assert [p.name for p in labels] == ["real_scale_transport_3_93000_0_front.txt", "transport_3_93000_0_front.txt"]
    for label in labels:
        lines = label.read_text().split("\n")[:-1]
        classes = sorted(OBJECT_CLASSES[int(line.split()[0])] for line in lines)
        assert classes == ["bin", "cuboid", "cuboid", "table", "table"]    # the scene's five segments
    for line in lines:
        xy = np.array(line.split()[1:], float).reshape(-1, 2)
        assert len(xy) >= 3 and ((0 <= xy) & (xy <= 1)).all()
    assert "names:\n  0: table" in result.data_yaml.read_text()
    again = make_image_dataset(cfg)                                         # resumes: nothing left to render
    assert again.rendered == 0 and again.instances == result.instances


# ---------------------------------------------------------------------------- sam
SMALL_SAM = {"encoder_embed_dim": 32, "encoder_depth": 2, "encoder_num_heads": 2, "encoder_global_attn_indexes": [1],
             "image_size": 256, "window_size": 4, "prompt_embed_dim": 32, "decoder_mlp_dim": 64}


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory):
    import torch
    from f2p_perception.image_segmenters import build_sam, save_sam
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "small_sam.pt"
    save_sam(build_sam(SMALL_SAM), SMALL_SAM, path)
    return path


def test_sam_backend_refines_geometric_prompts_with_the_real_predictor(view, sam_checkpoint):
    from f2p_perception.segmentation import SEGMENTERS
    robot, images, pose = view
    frame = frame_of(robot, images, pose)
    sam = SEGMENTERS.make("sam", min_points=1, checkpoint=str(sam_checkpoint), device="cpu")
    seg = images["segmentation"]
    ks = [k for k in np.unique(seg[seg >= 0]) if (seg == k).sum() > 50]
    true_objects = objects_from_masks(frame, np.stack([seg == k for k in ks]), ["cuboid"] * len(ks), [1.0] * len(ks),
                                      erode_px=0)
    for k, (x0, y0, x1, y1) in zip(ks, sam.prompt_boxes(frame, true_objects)):   # a prompt box holds its pixels
        vs, us = np.nonzero(seg == k)
        assert x0 <= us.min() and us.max() <= x1 and y0 <= vs.min() and vs.max() <= y1
        assert us.min() - x0 <= sam.box_margin + 1 and x1 - us.max() <= sam.box_margin + 1
    prompted = sam.prompts.segment(frame)
    objects = sam.segment(frame)                                  # random weights: masks are noise, the path is real
    assert {o.label for o in objects} <= {o.label for o in prompted}
    for o in objects:
        assert 0.0 <= o.score <= 1.0 and np.isfinite(o.points).all()


def test_sam_refuses_missing_and_corrupt_checkpoints(tmp_path, sam_checkpoint):
    from f2p_perception.image_segmenters import SamSegmenter, load_sam
    with pytest.raises(ValueError, match="needs a local checkpoint"):
        SamSegmenter()
    with pytest.raises(ValueError, match="no SAM checkpoint"):
        load_sam(tmp_path / "absent.pth")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(sam_checkpoint.read_bytes()[:4000])
    with pytest.raises(ValueError, match="cannot load SAM checkpoint"):
        load_sam(cut)
    with pytest.raises(ValueError, match="prompts come from"):
        SamSegmenter(checkpoint=str(sam_checkpoint), prompts="labelled_cloud")


def test_the_shipped_yolo_model_segments_a_fresh_scene():
    """The shipped model (trained on task seeds 90000 + 1000 n + i) on a scene it never saw."""
    from f2p_perception.image_segmenters import YoloSegmenter
    robot, images, _pose = render("organize", 5, 81234)
    masks, classes, _scores = YoloSegmenter(device="cpu").detect(images["rgb"])
    seg = images["segmentation"]
    found = 0
    truth = [k for k in np.unique(seg[seg >= 0]) if (seg == k).sum() >= 100]
    for k in truth:
        ious = [(m & (seg == k)).sum() / (m | (seg == k)).sum() for m in masks]
        if ious and max(ious) >= 0.5:
            found += classes[int(np.argmax(ious))] == robot.scene.labels[k]
    assert found >= len(truth) - 1, (found, len(truth), classes)
