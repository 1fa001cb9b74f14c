#!/usr/bin/env bash
# Prepare the f2p environment: system libraries, the pinned Python virtualenv (ROS 2 wheels
# of one distro, torch, mujoco, open3d, ...), the ROS wheels' CMake path fix, and `colcon build`.
# Idempotent and cached: a second run with nothing changed only checks stamps.
#
# Environment knobs:
#   F2P_ROS_DISTRO  kilted (default) or jazzy: which ROS 2 wheels, from requirements.lock or
#                   requirements-jazzy.lock. Each distro has its own workspace here: kilted in
#                   .venv, build/, install/, log/; jazzy in .venv-jazzy, build-jazzy/, ... (the two
#                   distros' wheels cannot share a venv); `. ./env.sh` enters the one
#                   F2P_ROS_DISTRO names.
#   F2P_TORCH       cuda (default: PyPI's torch, CUDA libraries included) or cpu: the robot's
#                   CPU-only workspace (Kilted; requirements-robot-cpu.lock; .venv-robot-cpu,
#                   install-robot-cpu/, ...), the robot-side packages only unless F2P_PACKAGES
#                   says otherwise; `F2P_TORCH=cpu . ./env.sh` enters it.
#   F2P_PYTHON      interpreter to build the venv from (default: python3.11, else python3)
#   F2P_CACHE_DIR   where venvs live (default: ${XDG_CACHE_HOME:-~/.cache}/f2p); the venv is
#                   keyed by the hash of requirements.lock, so clones share it and a changed
#                   lock file builds a new one.
#   F2P_PACKAGES    build only these packages and what they depend on (colcon --packages-up-to);
#                   default: every package. docker/Dockerfile's robot image builds the robot side.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTRO=${F2P_ROS_DISTRO:-kilted}
TORCH=${F2P_TORCH:-cuda}
case "$DISTRO/$TORCH" in
  kilted/cuda) LOCK="$ROOT/requirements.lock"; WS="" ;;
  jazzy/cuda)  LOCK="$ROOT/requirements-jazzy.lock"; WS="-jazzy" ;;
  kilted/cpu)  LOCK="$ROOT/requirements-robot-cpu.lock"; WS="-robot-cpu"; F2P_PACKAGES=${F2P_PACKAGES:-f2p_bringup} ;;
  *) printf '[f2p setup] FAILED: F2P_ROS_DISTRO=%s F2P_TORCH=%s; f2p is built for kilted (default) or jazzy, and torch cuda (default) or cpu (kilted)\n' "$DISTRO" "$TORCH" >&2; exit 1 ;;
esac
T0=$(date +%s)

say()  { printf '\033[1m[f2p setup]\033[0m %s\n' "$*"; }
die()  { printf '\033[31m[f2p setup] FAILED: %s\033[0m\n' "$1" >&2; shift
         for hint in "$@"; do printf '  try: %s\n' "$hint" >&2; done; exit 1; }

# --- interpreter ---------------------------------------------------------------------
PY=${F2P_PYTHON:-}
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY'" \
  "install Python 3.11 (the ROS 2 wheels are cp311), or set F2P_PYTHON=/path/to/python3.11"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$PYVER" = "3.11" ] || die "Python $PYVER found at '$PY'; the ROS 2 wheels need Python 3.11" \
  "set F2P_PYTHON=/path/to/python3.11"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "'$PY' lacks venv/ensurepip" \
  "apt-get install python3.11-venv"

# --- system libraries ------------------------------------------------------------------
# open3d needs libusb-1.0 to import and libgomp; MuJoCo's headless renderer needs EGL
# with Mesa's driver (MUJOCO_GL=egl in env.sh).
need_libs=()
for pair in "libusb-1.0.so.0:libusb-1.0-0" "libgomp.so.1:libgomp1" "libEGL.so.1:libegl1" \
            "libEGL_mesa.so.0:libegl-mesa0" "libGL.so.1:libgl1"; do
  so=${pair%%:*}; deb=${pair#*:}
  ldconfig -p 2>/dev/null | grep -q "$so" || need_libs+=("$deb")
done
if [ ${#need_libs[@]} -gt 0 ]; then
  say "installing system libraries: ${need_libs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  command -v apt-get >/dev/null 2>&1 || die "missing system libraries ${need_libs[*]} and no apt-get" \
    "install the packages providing: ${need_libs[*]}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_libs[@]}"; } \
    >/tmp/f2p-apt.log 2>&1 || die "apt-get install ${need_libs[*]} (log: /tmp/f2p-apt.log)" \
    "sudo apt-get update && sudo apt-get install -y ${need_libs[*]}"
fi

# --- virtualenv (cached by lock hash) ---------------------------------------------------
[ -f "$LOCK" ] || die "$(basename "$LOCK") is missing" "git checkout $(basename "$LOCK"), or 'F2P_ROS_DISTRO=$DISTRO F2P_TORCH=$TORCH make lock'"
HASH=$(cat "$LOCK" "$ROOT/tools/fix_ros_cmake.py" | sha256sum | cut -c1-16)
CACHE=${F2P_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/f2p}
VENV="$CACHE/venv-py311-$HASH"
if [ -f "$VENV/.f2p-ready" ]; then
  say "python environment (ROS 2 $DISTRO, torch $TORCH): cached ($VENV)"
else
  say "python environment (ROS 2 $DISTRO, torch $TORCH): building $VENV"
  if [ "$TORCH" = cuda ]; then SIZE="~6 GB (torch with CUDA libraries"; else SIZE="~1.5 GB (torch's CPU build"; fi
  say "  first run downloads $SIZE, ROS 2 wheels, open3d, ...); later runs reuse the pip cache"
  mkdir -p "$CACHE"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "python -m venv $VENV" "apt-get install python3.11-venv"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade "pip>=24" \
    || die "upgrading pip in the venv" "check network access to PyPI"
  # Progress: pip prints one line per collected/installed package.
  # The CPU build of torch is on PyTorch's CPU index (PyPI has only the CUDA build); one retry, so
  # that where the index cannot be reached a wheel found elsewhere is not held up at every lookup.
  PYTORCH_CPU=(); [ "$TORCH" = cuda ] || PYTORCH_CPU=(--find-links https://download.pytorch.org/whl/cpu/torch/ --retries 1)
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off "${PYTORCH_CPU[@]}" \
        -r "$LOCK" 2>&1 | tee "$CACHE/pip-install-$HASH.log" \
        | grep --line-buffered -E '^(Collecting|Installing collected|Successfully installed|ERROR)' \
        | sed -u 's/^/  /' | cut -c1-160; then :; fi
  grep -q '^Successfully installed' "$CACHE/pip-install-$HASH.log" \
    || die "pip install -r requirements.lock (full log: $CACHE/pip-install-$HASH.log)" \
      "check network access to PyPI and free disk space (~12 GB)" \
      "if a pinned version vanished from PyPI, regenerate the lock: make lock"
  say "  fixing the ROS wheels' CMake paths"
  "$VENV/bin/python" "$ROOT/tools/fix_ros_cmake.py" "$VENV" || die "CMake path fix" \
    "see tools/fix_ros_cmake.py"
  touch "$VENV/.f2p-ready"
fi
ln -sfn "$VENV" "$ROOT/.venv$WS"

# --- colcon build (skipped when no input changed) --------------------------------------
cd "$ROOT"
BUILD="build$WS" INSTALL="install$WS" LOGS="log$WS"
STAMP="$ROOT/$INSTALL/.f2p-build-stamp"
PACKAGES=${F2P_PACKAGES:-}
INPUTS=$( { echo "$VENV $PACKAGES"; find src colcon.meta tools/setup.sh -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
            | sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-64)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$INPUTS" ]; then
  say "workspace ($INSTALL/): up to date"
else
  say "workspace: colcon build into $INSTALL/ (log: $LOGS/latest_build)"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
  # src/overlays: upstream interface packages (control_msgs, tf2_msgs) for ROS installs without
  # them; one the underlay already has is not built (its own stays authoritative).
  SKIP=""
  for overlay in src/overlays/*/package.xml; do
    name=$(basename "$(dirname "$overlay")")
    if [ -e "$VENV/share/ament_index/resource_index/packages/$name" ]; then SKIP="$SKIP $name"; fi
  done
  [ -z "$SKIP" ] || say "  the ROS install has$SKIP: not building the overlay"
  # The interfaces generate C/C++ type support too; two jobs keep a 2-core machine usable.
  build() {
    # shellcheck disable=SC2086  # PACKAGES is a word list
    colcon --log-base "$LOGS" build --symlink-install --build-base "$BUILD" --install-base "$INSTALL" --event-handlers console_direct- console_cohesion- status- summary+ \
      --parallel-workers "${F2P_BUILD_JOBS:-2}" ${PACKAGES:+--packages-up-to $PACKAGES} ${SKIP:+--packages-skip $SKIP} \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF --no-warn-unused-cli
  }
  if ! build; then
    # A symlink install keeps stale state of files that were renamed or removed since the last
    # build (colcon then fails to link them): one clean rebuild heals it.
    say "workspace: the build failed; once more from a clean $BUILD/ and $INSTALL/"
    rm -rf "$BUILD" "$INSTALL"
    build || die "colcon build (per-package logs under $LOGS/latest_build/)" \
      "read the failing package's log: ls $LOGS/latest_build/*/stdout_stderr.log"
  fi
  # The command-line tools (f2p-bringup, f2p-learn, ...; `ros2 run <package> <tool>` on a ROS
  # install) on PATH after `. ./env.sh`: install/bin links to each; node executables stay out.
  rm -rf "$INSTALL/bin" && mkdir -p "$INSTALL/bin"
  for tool in "$INSTALL"/*/lib/*/f2p-*; do [ -x "$tool" ] && ln -s "../${tool#"$INSTALL"/}" "$INSTALL/bin/"; done
  echo "$INPUTS" > "$STAMP"
fi
ENTER=". ./env.sh"
[ "$TORCH" = cuda ] || ENTER="F2P_TORCH=$TORCH $ENTER"
[ "$DISTRO" = kilted ] || ENTER="F2P_ROS_DISTRO=$DISTRO $ENTER"
say "ready (ROS 2 $DISTRO, torch $TORCH) in $(( $(date +%s) - T0 )) s — enter it with: $ENTER"
