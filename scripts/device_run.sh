#!/usr/bin/env bash
# A GPU lease in one command: collect on the device machine's cores, train on its GPU, evaluate there, and bring
# the figures (and a checkpoint small enough to travel) back. Leases are short (15 min of device time, 10 min a
# command) and a device machine starts bare, so everything it needs travels in .device/ and is run from here.
#
# Here, once, before the lease:
#   bash scripts/device_run.sh prepare
#     downloads the wheels the device image lacks (for its Python 3.12) into .device/wheels and copies
#     ../shared/stage1 into .device/shared/stage1: transport only, .device/ is ignored and never committed.
# On the device (the `run` tool with carry [".device"]; BUDGET_S a minute under its timeout_s):
#   bash scripts/device_run.sh lease MANIFEST BUDGET_S [tools.train arguments ...]
#   e.g. bash scripts/device_run.sh lease configs/velocity_steady.yaml 540 --preset paper --amp bf16 --mirror
#     installs the wheels beside the image's CUDA torch, collects MANIFEST with every core, trains until the
#     budget less the evaluation's share (checkpoints every minute, so a kill loses at most one), evaluates
#     with tools.eval_suite, and writes to $OUT (at most 7 files, as the tool brings back at most 8):
#     lease.log, losses.csv, eval.json, and the run's checkpoint folder as ckpt.tar.partNN, 15 MiB each, at
#     most 4 (a model over about 60 MB brings back its figures only). Here: cat ckpt.tar.part* | tar x.
# Environment: EVAL_ONLY (eval_suite scenarios; default "joystick-protocol omni walk-perturb stay push"),
#   EVAL_S (seconds kept for the evaluation; default 150), EVAL_MAX_EPISODES (a cap per scenario),
#   LOADER_WORKERS (default 8), WORK (scratch folder; default /tmp/bm_lease), DEVICE (default cuda), PYTHON
#   (default python3), SKIP_INSTALL=1 (the packages already importable: the smoke test here,
#   tests/test_device_script.py, runs with DEVICE=cpu and this checkout's Python).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

prepare() {
    local python=${PYTHON:-.venv/bin/python}
    mkdir -p .device/wheels .device/shared
    # The versions this checkout runs with; --no-deps: the image already holds their other dependencies
    # (numpy, scipy, h5py, onnx, onnxruntime, safetensors, tqdm, pyyaml, tensorboard, torch).
    local pins
    local wanted='^(mujoco|mjlab|diffusers|gymnasium|farama-notifications|cloudpickle|rsl-rl-lib|stable.baselines3)=='
    pins=$("$python" -m pip list --format=freeze 2>/dev/null | grep -i -E "$wanted")
    # shellcheck disable=SC2086
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        -d .device/wheels $pins
    rm -rf .device/shared/stage1
    cp -r ../shared/stage1 .device/shared/stage1
    du -sh .device
    echo "carry [\".device\"]; run: bash scripts/device_run.sh lease MANIFEST BUDGET_S [tools.train arguments]"
}

lease() {
    local manifest=${1:?MANIFEST}
    local budget=${2:?BUDGET_S}
    shift 2
    local start=$SECONDS python=${PYTHON:-python3} device=${DEVICE:-cuda} eval_s=${EVAL_S:-150}
    local work=${WORK:-/tmp/bm_lease} out=${OUT:?OUT: the folder whose files come back}
    [[ -f $manifest ]] || { echo "error: no manifest at $manifest" >&2; exit 2; }
    [[ $budget =~ ^[0-9]+$ ]] || { echo "error: BUDGET_S must be whole seconds, got '$budget'" >&2; exit 2; }
    mkdir -p "$work"
    export TQDM_DISABLE=1 PYTHONPATH="$work/site:$REPO"
    if [[ ${SKIP_INSTALL:-0} != 1 ]]; then
        if [[ ! -d .device/wheels ]]; then
            echo "error: .device/wheels missing: run 'prepare' on your machine, carry .device" >&2
            exit 2
        fi
        "$python" -m pip install --quiet --no-index --no-deps --target "$work/site" .device/wheels/*.whl
    fi
    if [[ ! -e ../shared/stage1 ]]; then  # the manifests name ../../shared/stage1/... from configs/
        [[ -d .device/shared/stage1 ]] || { echo "error: no ../shared/stage1 and no .device/shared" >&2; exit 2; }
        ln -sfn "$REPO/.device/shared" ../shared
    fi
    if [[ $device == cuda* ]]; then
        "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'
print(torch.cuda.get_device_name())"
    fi
    echo "== setup $((SECONDS - start)) s; collecting $manifest"
    "$python" -m tools.data collect --manifest "$manifest" --out "$work/data.h5" --workers "$(nproc)"
    local left=$((budget - (SECONDS - start) - eval_s))
    (( left > 60 )) || { echo "error: $left s left for training: raise BUDGET_S or lower EVAL_S" >&2; exit 2; }
    echo "== $((SECONDS - start)) s; training for at most $left s"
    local status=0
    "$python" -m tools.train --data "$work/data.h5" --out "$work/run" --device "$device" \
        --loader-workers "${LOADER_WORKERS:-8}" --checkpoint-every-s 60 --time-limit-s "$left" "$@" || status=$?
    echo "== training ended with status $status at $((SECONDS - start)) s"
    cp "$work/run/losses.csv" "$out/" 2>/dev/null || true
    [[ -d $work/run/checkpoint ]] || { echo "error: no checkpoint was written" >&2; exit 1; }
    local eval_left=$((budget - (SECONDS - start) - 15))
    # shellcheck disable=SC2086
    timeout "$eval_left" "$python" -m tools.eval_suite --checkpoint "$work/run/checkpoint" --out "$out/eval.json" \
        --workers "$(nproc)" ${EVAL_MAX_EPISODES:+--max-episodes $EVAL_MAX_EPISODES} \
        --only ${EVAL_ONLY:-joystick-protocol omni walk-perturb stay push} ||
        echo "== the evaluation stopped at $((SECONDS - start)) s (eval.json holds the scenarios that ended)"
    tar -C "$work/run" -cf "$work/ckpt.tar" checkpoint
    local size
    size=$(stat -c %s "$work/ckpt.tar")
    if (( size <= 4 * 15 * 1024 * 1024 )); then
        split -b 15M -d -a 2 "$work/ckpt.tar" "$out/ckpt.tar.part"
    else
        echo "== the checkpoint ($((size / 1048576)) MB) is too large to come back; its figures are in eval.json"
    fi
    echo "== done in $((SECONDS - start)) s"
}

case ${1:-} in
    prepare) prepare ;;
    lease)
        shift
        : "${OUT:?OUT: the folder whose files come back}"
        lease "$@" 2>&1 | tee "$OUT/lease.log"
        exit "${PIPESTATUS[0]}" ;;
    *) echo "usage: bash scripts/device_run.sh prepare | lease MANIFEST BUDGET_S [tools.train arguments]" >&2; exit 2 ;;
esac
