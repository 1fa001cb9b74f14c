"""Perception's self filter (f2p_perception.self_filter): the robot's body as capsules along a
chain of frames; points inside become NaN (an organised cloud keeps its layout)."""
import numpy as np
import pytest

from f2p_common.interfaces import CameraCloud
from f2p_perception.self_filter import chain_capsules, inside, remove_robot


def test_points_within_a_capsule_of_the_chain_are_removed_and_others_kept():
    caps = chain_capsules([[0, 0, 0], [0, 0, 1], [1, 0, 1]], [0.1, 0.05])
    pts = np.array([[0.05, 0, 0.5], [0.2, 0, 0.5],          # beside the first segment: in, out
                    [0.5, 0, 1.04], [0.5, 0, 1.08],          # above the second: in, out
                    [0, 0, -0.09], [0, 0, -0.11],            # the round end: in, out
                    [np.nan, np.nan, np.nan]], np.float32)
    assert inside(pts, caps).tolist() == [True, False, True, False, True, False, False]
    cloud, removed = remove_robot(CameraCloud(pts, height=1), caps)
    assert removed == 3 and cloud.points.shape == pts.shape
    assert np.isnan(cloud.points[[0, 2, 4]]).all() and np.isfinite(cloud.points[[1, 3, 5]]).all()


def test_one_frame_is_a_sphere_and_radii_must_fit_the_chain():
    (sphere,) = chain_capsules([[1, 2, 3]], [0.2])
    assert inside(np.array([[1, 2, 3.19], [1, 2, 3.21]]), [sphere]).tolist() == [True, False]
    with pytest.raises(ValueError, match="3 frames make 2 capsule"):
        chain_capsules([[0, 0, 0]] * 3, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="positive"):
        chain_capsules([[0, 0, 0]] * 2, [0.0])
