# Enter the built f2p environment, like a ROS `setup.bash`:   . ./env.sh
# (run `make setup` first). Activates the pinned virtualenv, overlays the colcon workspace
# (install/), and keeps ROS 2 traffic on this machine. F2P_ROS_DISTRO=jazzy enters the Jazzy
# workspace instead (.venv-jazzy, install-jazzy/; `F2P_ROS_DISTRO=jazzy make setup` builds it);
# ROS_DISTRO is set to the distro entered, as a ROS install's setup.bash does. F2P_TORCH=cpu
# enters the robot's CPU-only workspace (.venv-robot-cpu, install-robot-cpu/).
#   ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST  (set F2P_ROS_NETWORK=1 on a real robot to
#                                            leave ROS's own defaults alone)
#   ROS_DOMAIN_ID                            kept if already set, else one per shell
# Model libraries are told to stay offline (no hub downloads at run time).
if [ -n "${BASH_SOURCE:-}" ]; then _f2p_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
elif [ -n "${ZSH_VERSION:-}" ]; then _f2p_root=$(cd "$(dirname "${(%):-%x}")" && pwd)
else _f2p_root=$(pwd); fi

case "${F2P_ROS_DISTRO:-kilted}/${F2P_TORCH:-cuda}" in
  kilted/cuda) _f2p_ws="" ;;
  jazzy/cuda)  _f2p_ws="-jazzy" ;;
  kilted/cpu)  _f2p_ws="-robot-cpu" ;;
  *) echo "f2p: F2P_ROS_DISTRO=$F2P_ROS_DISTRO F2P_TORCH=$F2P_TORCH; f2p is built for kilted (default) or jazzy, torch cuda or cpu (kilted)" >&2
     unset _f2p_root; return 1 2>/dev/null || exit 1 ;;
esac
if [ ! -x "$_f2p_root/.venv$_f2p_ws/bin/python" ] || [ ! -f "$_f2p_root/install$_f2p_ws/setup.sh" ]; then
  echo "f2p: the ${F2P_ROS_DISTRO:-kilted} environment${F2P_TORCH:+ (torch $F2P_TORCH)} is not built here ($_f2p_root); run '${F2P_ROS_DISTRO:+F2P_ROS_DISTRO=$F2P_ROS_DISTRO }${F2P_TORCH:+F2P_TORCH=$F2P_TORCH }make setup' first" >&2
  unset _f2p_root _f2p_ws
  return 1 2>/dev/null || exit 1
fi

# colcon's and venv's scripts read unset variables: tolerate callers running with `set -u`.
case $- in *u*) _f2p_nounset=1; set +u ;; *) _f2p_nounset= ;; esac
VIRTUAL_ENV_DISABLE_PROMPT=1 . "$_f2p_root/.venv$_f2p_ws/bin/activate"
_f2p_venv=$(cd "$_f2p_root/.venv$_f2p_ws/" && pwd -P)
export AMENT_PREFIX_PATH="$_f2p_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_f2p_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
COLCON_CURRENT_PREFIX="$_f2p_root/install$_f2p_ws" . "$_f2p_root/install$_f2p_ws/setup.sh"
export PATH="$_f2p_root/install$_f2p_ws/bin:$PATH"          # f2p-bringup, f2p-learn, f2p-sign, ...

if [ "${F2P_ROS_NETWORK:-0}" != 1 ]; then
  export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
  export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 100) + 1 ))}"
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export F2P_ROOT="$_f2p_root" F2P_ROS_DISTRO="${F2P_ROS_DISTRO:-kilted}" F2P_TORCH="${F2P_TORCH:-cuda}"
export ROS_DISTRO="$F2P_ROS_DISTRO"
# Offline model libraries: weights come from local paths only.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$_f2p_root/.cache/ultralytics}"
export MPLBACKEND="${MPLBACKEND:-Agg}"
# Headless rendering (mujoco.Renderer) through Mesa's EGL; no display needed.
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
[ -n "$_f2p_nounset" ] && set -u
unset _f2p_root _f2p_venv _f2p_nounset _f2p_ws
