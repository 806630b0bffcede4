#!/usr/bin/env bash
# Fresh-machine setup: OSMesa for offscreen rendering, Xvfb + xdotool for the GUI tests, a venv with CPU
# torch, the G1 model, bm_gym (editable).
#   bash scripts/setup.sh             the embedded default (.venv, MuJoCo on the CPU)
#   bash scripts/setup.sh --isaaclab  also .venv-isaaclab: Python 3.12, Isaac Lab 3 (kit-less, Newton), the G1
#                                     converted to USD (cached); about 8 GB and 3-12 minutes (docs/isaaclab.md)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p | grep libOSMesa >/dev/null || ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null; then
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
# The MuJoCo that mjlab 1.6 (where the Stage 1 policies were trained) pins.
$PIP install -q mujoco==3.11.0
$PIP install -q -e ".[dev,export,video]"

[ "${1:-}" = "--isaaclab" ] || exit 0

# Isaac Lab 3 needs Python 3.12 and about 8 GB (torch 2.11 with its CUDA libraries, warp, newton), plus pip's cache.
need_gb=12
free_gb=$(df -Pk . | awk 'NR == 2 { printf "%d", $4 / 1048576 }')
if [ ! -x .venv-isaaclab/bin/python ] && [ "$free_gb" -lt "$need_gb" ]; then
    echo "!!! scripts/setup.sh --isaaclab: ${free_gb} GB free here, ${need_gb} GB needed for .venv-isaaclab" >&2
    exit 3
fi
if [ ! -x .venv-isaaclab/bin/python ]; then
    # (grep without -q here and above: grep -q stops reading at its first match, and under pipefail the SIGPIPE
    # the writer may then get fails the test; `pyenv versions | grep -q` failed once in about 20 runs here)
    pyenv_312=""
    if command -v pyenv >/dev/null; then
        pyenv_312=$(pyenv versions --bare | grep '^3\.12' | tail -1 || true)
    fi
    if command -v python3.12 >/dev/null && python3.12 --version >/dev/null 2>&1; then
        python3.12 -m venv .venv-isaaclab
    elif [ -n "$pyenv_312" ]; then
        PYENV_VERSION=$pyenv_312 python3.12 -m venv .venv-isaaclab
    else
        echo "!!! scripts/setup.sh --isaaclab: Isaac Lab 3 needs Python 3.12 (python3.12 or a pyenv 3.12)" >&2
        exit 3
    fi
fi
PIP=".venv-isaaclab/bin/python -m pip"
$PIP install -q --upgrade pip
$PIP install -q --no-deps mjlab==1.6.0
$PIP install -q -e ".[dev,isaaclab]"
# The G1 as USD, converted once from the same MJCF the MuJoCo backend compiles (cached under ~/.cache/bm_gym).
.venv-isaaclab/bin/python -c "from bm_gym.sim.isaaclab_asset import g1_usd_path; print('G1 USD:', g1_usd_path())"
