# f2p: two commands set up and run everything on a fresh machine (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every ROS process we start stays on loopback, in a domain of its own per make run.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 100) + 1 )))
export ROS_DOMAIN_ID

PYTEST_ARGS ?=
ENV := . ./env.sh

.PHONY: help setup full-workspace demo test test-distros test-robot-cpu bench-sim bench-model bench-f2p bench-relations bench-stack bench-reliability bench-perception bench-perceived-loop bench-guardian bench-afil bench-arms bench-view bench-distros bench-delivery yolo-seg-model lock clean distclean

help:
	@echo "make setup   prepare the environment (venv from requirements.lock, colcon build); cached"
	@echo "make demo    setup, then the robot graph fails, learns from it and succeeds, live over ROS 2 -> out/demo/report.md"
	@echo "make test    setup, then run the test suite (pytest over test/); F2P_ROS_DISTRO=jazzy for ROS 2 Jazzy (default kilted)"
	@echo "make test-robot-cpu  set up the robot's CPU-only workspace (F2P_TORCH=cpu), then the robot side's tests in it (~3 min)"
	@echo "make test-distros  set up both distros, then the robot graph on Jazzy and the learner on Kilted: one failure learned and swapped across (~10 min)"
	@echo "make bench-sim  simulated data generation speed -> benchmarks/results/sim_datagen.{json,md}"
	@echo "make bench-model  skill-effect planning latency -> benchmarks/results/skill_effect.{json,md}"
	@echo "make bench-f2p  Fail2Progress vs baselines after one failure, 5-minute recipe -> benchmarks/results/fail2progress.{json,md,png}, failure_mode_probe.{json,md}, task_feasibility.{json,md} (the paper recipe: benchmarks/fail2progress.py --recipe paper)"
	@echo "make bench-relations  relation detector backends against the simulator's relations, paper and real-scale scenes -> benchmarks/results/relation_detector{,_real_scale}.{json,md}"
	@echo "make bench-perception  segmentation backends (geometric, convex, yolo_seg, sam's rate) on rendered 640x480 RGB-D frames of real-scale and paper scenes against the simulator's instances (precision, recall, IoU, classes, relation F1, rate) -> benchmarks/results/perception.{json,md,png} (~20 min); with REAL_FRAMES=<folder> also labelled real frames beside Open3D's textbook pipeline -> perception_real.{json,md}"
	@echo "make bench-guardian  Guardian's verifiers (symbolic, baseline, the small VLM with each CoT strategy, data scaling) on FailCoT's test split of unseen task variants and camera; task success on the sim graph with execution noise, with and without Guardian -> benchmarks/results/guardian.{json,md,png}, guardian_loop.{json,md} (~40 min)"
	@echo "make bench-afil  AFIL, the failure-aware skill controller: Success-only / + Failure Correction / Static-FIL / Adaptive-FIL on 3 short- and 2 long-horizon skill tasks, out of domain, the guidance-scale ablation, latency; ships the controller; the stack's task success with each controller -> benchmarks/results/afil.{json,md,png}, afil_stack{,_scripted}.{json,md}, src/f2p_afil/models/afil_controller.pt (~75 min)"
	@echo "make bench-reliability  the failure -> learner path: 100 learner kills, 20 recorder kills (lost / duplicated), a hung node of each type and 3 runner kills, the sim graph under --respawn with every node type killed 20x and hung 2x and its runner killed 20x while signed events are recorded (lost / duplicated, time back), make demo's loop x3 (failure -> ack, -> new model), bag write rate, f2p-learn-bag time -> benchmarks/results/reliability.{json,md} (~90 min)"
	@echo "make bench-view  f2p-view in headless Chromium: the sim graph records a real failure, its bag shown by rerun's web viewer on 127.0.0.1, screenshotted -> benchmarks/results/view.{json,md,png} (~3 min; needs chromium-headless-shell)"
	@echo "make bench-distros  make demo's loop with the robot graph on Jazzy and the learner on Kilted -> benchmarks/results/distros.{json,md} (~4 min)"
	@echo "make bench-delivery  a model from the learner to robots that share no disk: transfer time per chunk size, the planner's swap by content, fetchers and the learner killed at random offsets (corrupt models served) -> benchmarks/results/model_delivery.{json,md} (~10 min)"
	@echo "make bench-stack  the robot graph over DDS: 640x480 cloud delivery, perception + relations rate, PlanTask latency, hot-swap pause, RunTask stages -> benchmarks/results/cloud_delivery.{json,md}, stack.{json,md} (~20 min)"
	@echo "make bench-arms  real arms in simulation: the UR5e's reach, 200 pick_place skills through f2p's skill server and the simulated UR/Robotiq drivers (success, error codes, time, contacts with supports) -> benchmarks/results/arms.{json,md}, arms_reach.png, arms_skill.png (~15 min)"
	@echo "make bench-perceived-loop  the learned model through the sim graph on fresh transport-3 scenes: the simulator's segments beside a noisy 640x480 depth camera segmented by geometric and convex, each failure put down to a cause -> benchmarks/results/perceived_loop.{json,md} (~40 min)"
	@echo "make yolo-seg-model  render the simulator's segmentation images and train the yolo_seg backend's model on them: paper scenes from scratch, then paper + real-scale scenes from those weights -> out/yolo_seg/model_mixed/yolo_seg_sim.pt (~80 min on 2 cores); copy it to src/f2p_perception/models/ to ship it"
	@echo "make lock    re-resolve requirements.in into requirements.lock (F2P_ROS_DISTRO=jazzy: requirements-jazzy.lock)"
	@echo "make clean   remove build/ install/ log/ (the cached venv stays)"

setup:
	@bash tools/setup.sh

# make demo and make test need a full workspace: the robot's CPU-only one has no simulator or training.
full-workspace:
	@if [ "$${F2P_TORCH:-cuda}" = cpu ]; then \
	  echo "[f2p] F2P_TORCH=cpu is the robot's workspace (no simulator, no training): make test-robot-cpu tests it;" \
	       "unset F2P_TORCH for make $(MAKECMDGOALS)" >&2; exit 2; fi

demo: full-workspace setup
	@$(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} python -m f2p_demo.live_demo --out out/demo

test: full-workspace setup
	@$(ENV) && echo "[f2p test] ROS_DOMAIN_ID=$$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$$ROS_AUTOMATIC_DISCOVERY_RANGE" \
	  && python -m pytest test $(PYTEST_ARGS)

# The robot graph (and this pytest) on Jazzy, the learner in Kilted's workspace (f2p_bringup.distro).
test-distros:
	@F2P_ROS_DISTRO=kilted bash tools/setup.sh && F2P_ROS_DISTRO=jazzy bash tools/setup.sh
	@export F2P_ROS_DISTRO=jazzy && $(ENV) && echo "[f2p test-distros] robot graph on $$ROS_DISTRO, learner on kilted; ROS_DOMAIN_ID=$$ROS_DOMAIN_ID" \
	  && python -m pytest test/distros --other-workspaces $(PYTEST_ARGS)

# The robot's CPU-only workspace (F2P_TORCH=cpu: the robot image's lock, robot-side packages only),
# and the tests of the robot side that need nothing of the learner's (no simulator, no training).
ROBOT_SIDE_TESTS := test/test_workspace_torch.py test/afil/test_afil_policy.py test/common/test_backends.py \
  test/common/test_convex_segmentation.py test/common/test_frames.py test/common/test_model_transfer.py \
  test/common/test_self_filter.py \
  test/common/test_sync.py test/common/test_vocabulary.py test/executor/test_task_runner.py \
  test/guardian/test_symbolic.py test/ros/test_action_endpoints.py test/ros/test_guardian_node.py \
  test/ros/test_interfaces.py test/ros/test_managed_node.py test/ros/test_pointcloud.py test/ros/test_tf.py \
  test/security/test_commands.py test/skill_effect/test_skill_effect_checkpoint.py \
  test/skill_effect/test_skill_effect_model.py test/skill_effect/test_skill_effect_planner.py
test-robot-cpu:
	@F2P_TORCH=cpu bash tools/setup.sh
	@export F2P_TORCH=cpu && $(ENV) && echo "[f2p test-robot-cpu] the robot's CPU-only workspace; ROS_DOMAIN_ID=$$ROS_DOMAIN_ID" \
	  && python -m pytest $(ROBOT_SIDE_TESTS) $(PYTEST_ARGS)

bench-arms: setup
	@$(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} python benchmarks/arms.py

bench-sim: setup
	@$(ENV) && python benchmarks/sim_datagen.py

bench-model: setup
	@$(ENV) && python benchmarks/skill_effect.py --repeats 10

bench-f2p: setup
	@$(ENV) && python benchmarks/fail2progress.py && python benchmarks/failure_mode_probe.py && python benchmarks/task_feasibility.py

bench-relations: setup
	@$(ENV) && export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} && python benchmarks/relation_detector.py \
	  && python benchmarks/relation_detector.py --layout real_scale && python benchmarks/real_scale_model.py

bench-perception: setup
	@$(ENV) && export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} && python benchmarks/perception.py \
	  && if [ -n "$(REAL_FRAMES)" ]; then python benchmarks/perception_real.py --frames "$(REAL_FRAMES)"; \
	     else echo "[bench-perception] real frames: REAL_FRAMES=<folder of f2p-convert-frames .npz> to score them"; fi

bench-perceived-loop: setup
	@$(ENV) && export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} && python benchmarks/perceived_loop.py

yolo-seg-model: setup
	@$(ENV) && export OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} \
	  && f2p-render-seg-data --out out/yolo_seg/data --scenes-per-cell 4 \
	  && f2p-train-yolo-seg --data out/yolo_seg/data --out out/yolo_seg/model --epochs 30 --imgsz 480 \
	  && f2p-render-seg-data --out out/yolo_seg/data_mixed --scenes-per-cell 4 --layouts paper real_scale \
	  && f2p-train-yolo-seg --data out/yolo_seg/data_mixed --out out/yolo_seg/model_mixed \
	       --model out/yolo_seg/model/yolo_seg_sim.pt --epochs 10 --imgsz 480

bench-afil: setup
	@$(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} python benchmarks/afil.py --demos 300 --rollouts 300 --steps 15000 \
	  --ship src/f2p_afil/models/afil_controller.pt \
	  && bash tools/setup.sh >/dev/null \
	  && OMP_NUM_THREADS=1 python benchmarks/guardian_loop.py --controller afil --noise 0 --settings open_loop relations guardian \
	       --name afil_stack \
	  && OMP_NUM_THREADS=1 python benchmarks/guardian_loop.py --controller scripted --noise 0 --settings open_loop \
	       --name afil_stack_scripted

bench-guardian: setup
	@$(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} python benchmarks/guardian.py --ship src/f2p_guardian/models/guardian_vlm \
	  && OMP_NUM_THREADS=1 python benchmarks/guardian_loop.py

bench-reliability: setup
	@$(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} python benchmarks/reliability.py

bench-view: setup
	@$(ENV) && python benchmarks/view_browser.py

bench-distros:
	@F2P_ROS_DISTRO=kilted bash tools/setup.sh && F2P_ROS_DISTRO=jazzy bash tools/setup.sh
	@export F2P_ROS_DISTRO=jazzy && $(ENV) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} python benchmarks/distros.py

bench-delivery: setup
	@$(ENV) && python benchmarks/model_delivery.py

bench-stack: setup
	@$(ENV) && python benchmarks/cloud_delivery.py && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} python benchmarks/stack.py

lock:
	@bash tools/lock.sh

clean:
	rm -rf build install log build-jazzy install-jazzy log-jazzy build-robot-cpu install-robot-cpu log-robot-cpu

distclean: clean
	rm -rf .venv .venv-jazzy .venv-robot-cpu .cache
