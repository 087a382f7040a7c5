#!/usr/bin/env bash
# Install Google Research Football (gfootball) for mapograph's football:* envs.
#
#   VENV=.venv bash .ci/install_football.sh     # or run it inside an active venv
#
# 1. Debian/Ubuntu packages gfootball's engine compiles against (only missing ones,
#    with sudo when not root).
# 2. In the venv: psutil setuptools wheel six "gym<0.26" (gfootball imports six and
#    gym<0.26 at run time without declaring them), then gfootball itself built with
#    --no-build-isolation (4-8 minutes of C++ compiling on 2 cores).
# Idempotent: exits early when gfootball already imports; every step can be re-run.
set -euo pipefail

APT_PACKAGES=(git cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev
  libsdl2-ttf-dev libsdl2-gfx-dev libboost-all-dev libdirectfb-dev libst-dev mesa-utils
  xvfb x11vnc)

if [ -n "${VENV:-}" ]; then
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
elif [ -z "${VIRTUAL_ENV:-}" ]; then
  echo "install_football.sh: set VENV=<path of a venv> or activate one first" >&2
  exit 1
fi

if python -c "import gfootball.env, gym, six" 2>/dev/null; then
  echo "gfootball is already installed in $VIRTUAL_ENV"
  exit 0
fi

stamp() { date +%s; }
t0=$(stamp)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "apt-get install: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
t1=$(stamp)
echo "system packages: $((t1 - t0)) s"

python -m pip install -q psutil setuptools wheel six "gym<0.26"
t2=$(stamp)
echo "pip prerequisites: $((t2 - t1)) s"

python -m pip install -q --no-build-isolation gfootball
t3=$(stamp)
echo "gfootball build: $((t3 - t2)) s"

python -c "import gfootball.env; print('gfootball ok')"
