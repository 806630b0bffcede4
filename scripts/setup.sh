#!/usr/bin/env bash
# Fresh-machine setup: OSMesa for offscreen rendering, Xvfb + xdotool for the GUI tests, a venv with CPU
# torch, the G1 model, bm_gym (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p | grep -q libOSMesa || ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libosmesa6 xvfb xdotool >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# This exact spec takes the CPU build from local disk; any other spec downloads a multi-GB CUDA build.
$PIP install -q torch==2.13.0
# Asset-only: mjlab's runtime dependencies are not needed to read its G1 MJCF and meshes.
$PIP install -q --no-deps mjlab==1.6.0
$PIP install -q -e ".[dev,export]"
