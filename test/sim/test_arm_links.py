"""The simulated UR5e's tf: ur_description's chain (what robot_state_publisher gives on the
robot) evaluated by f2p_sim.arm_model puts every link where the MuJoCo model's DH bodies are."""
import mujoco
import numpy as np

from f2p_common.frames import compose
from f2p_sim.arm_model import UR5E_JOINTS, ArmMount, add_ur5e, ur5e_link_frames


def test_the_urdf_chain_matches_the_simulated_arm_at_random_joint_angles():
    spec = mujoco.MjSpec()
    add_ur5e(spec, ArmMount((0.0, 0.0, 0.0)))
    model = spec.compile()
    data = mujoco.MjData(model)
    same_place = {"shoulder_link": "link2", "forearm_link": "link3", "wrist_1_link": "link5",
                  "wrist_2_link": "link6", "tool0": "tool0"}
    for q in np.random.default_rng(0).uniform(-3.0, 3.0, (5, 6)):
        for name, value in zip(UR5E_JOINTS, q):
            data.qpos[model.jnt_qposadr[model.joint(name).id]] = value
        mujoco.mj_forward(model, data)
        poses = {"base_link": np.array([0.0, 0, 0, 0, 0, 0, 1])}
        for link, (parent, pose) in ur5e_link_frames(q).items():
            poses[link] = compose(poses[parent], pose)
        for link, body in same_place.items():
            np.testing.assert_allclose(poses[link][:3], data.body(body).xpos, atol=1e-9)
        w, x, y, z = data.body("tool0").xquat                 # tool0's orientation too (z out of the flange)
        q_tool0 = poses["tool0"][3:]
        assert min(np.abs(q_tool0 - [x, y, z, w]).max(), np.abs(q_tool0 + [x, y, z, w]).max()) < 1e-9
