"""f2p_skills: the skill server that drives a real arm through its vendor's controller (robot side).

Owns: ``arms`` (each supported arm and gripper as data: joints, limits, frames, the vendor
driver's action names), ``kinematics`` (forward and inverse kinematics), ``motion`` (Cartesian
paths, joint trajectories and their timing, the checks every trajectory passes before it is
sent), ``skills`` (each library skill — pick_place, push — as phases of motion from the target's
box: grasp and approach poses, clearance over supports, error codes), and the ``skill_server``
node that serves ``ExecuteSkill`` over ``control_msgs/FollowJointTrajectory`` and the gripper's
``GripperCommand``.
May import: ``f2p_common``; ROS only in the node.
"""
