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
#   bash scripts/device_run.sh lease MANIFEST BUDGET_S [tools.train arguments ...] [--also [arguments ...]] ...
#   e.g. bash scripts/device_run.sh lease configs/velocity_steady.yaml 540 --preset paper --amp bf16 --mirror
#        bash scripts/device_run.sh lease configs/mixed_dance_benchmark.yaml 540 --preset paper --amp bf16 \
#            --also --sources velocity          # two runs on one GPU: mixed data, and its velocity part alone
#     installs the wheels beside the image's CUDA torch, collects MANIFEST with every core, trains until the
#     budget less the evaluation's share (checkpoints every minute, so a kill loses at most one; every --also
#     group is one more run, trained at the same time with the shared arguments plus its own: a small model
#     leaves most of the GPU idle), evaluates every run, and writes to $OUT (the tool brings back 8 files):
#     lease.log; results.tar with runN/losses.csv, train_cfg.json, eval.json (tools.eval_suite) and
#     source_NAME.json (tools.eval_diffusion --source NAME); the checkpoints, slimmed to their EMA weights, that fit
#     in 4 parts of 15 MiB as ckpt.tar.partNN, in run order (a paper-size model brings back its figures only).
#     Here: tar xf results.tar; cat ckpt.tar.part* | tar x.
# Environment: EVAL_ONLY (eval_suite scenarios; default "joystick-protocol omni walk-perturb stay push"; set
#   and empty: none), EVAL_MAX_EPISODES (a cap per scenario), EVAL_SOURCES (manifest sources each run is
#   evaluated on with tools.eval_diffusion; default none), EVAL_EPISODES (default 10), EVAL_SECONDS (default 10),
#   EVAL_S (seconds kept for the evaluations, which share the cores; default 150), GUIDANCE (tools.checkpoint
#   set-guidance arguments recorded in every run's checkpoint before the evaluations), LOADER_WORKERS (per run;
#   default 8), WORK (scratch folder; default /tmp/bm_lease), DEVICE (default cuda), PYTHON (default python3),
#   SKIP_INSTALL=1 (the packages already importable: the smoke test here, tests/test_device_script.py, runs
#   with DEVICE=cpu and this checkout's Python).
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
    # One run per group of training arguments: the arguments before the first --also are every run's, each
    # --also starts one more run with its own on top (kept shell-quoted, replayed with eval).
    local runs=("") n=1 arg
    for arg in "$@"; do
        if [[ $arg == --also ]]; then runs+=(""); n=$((n + 1)); continue; fi
        if (( n == 1 )); then runs[0]+=" $(printf '%q' "$arg")"; else runs[n - 1]+=" $(printf '%q' "$arg")"; fi
    done
    for ((i = 1; i < n; i++)); do runs[i]="${runs[0]}${runs[i]}"; done
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
    # Fail here, not after the collection, if the image lacks something the rollouts or the training import.
    "$python" -c "import mujoco, diffusers, h5py, onnxruntime, rsl_rl, torch, bm_gym.sim, bm_gym.diffusion
print('torch', torch.__version__, 'mujoco', mujoco.__version__)"
    if [[ $device == cuda* ]]; then
        "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'
print(torch.cuda.get_device_name())"
    fi
    echo "== setup $((SECONDS - start)) s; collecting $manifest"
    "$python" -m tools.data collect --manifest "$manifest" --out "$work/data.h5" --workers "$(nproc)"
    local left=$((budget - (SECONDS - start) - eval_s))
    (( left > 60 )) || { echo "error: $left s left for training: raise BUDGET_S or lower EVAL_S" >&2; exit 2; }
    echo "== $((SECONDS - start)) s; training $n run(s) at once for at most $left s"
    local pids=() status
    for ((i = 0; i < n; i++)); do
        echo "== run$((i + 1)):${runs[i]}"
        eval "\"\$python\" -m tools.train --data \"\$work/data.h5\" --out \"\$work/run$((i + 1))\" --device \"\$device\" \
            --loader-workers \"\${LOADER_WORKERS:-8}\" --checkpoint-every-s 60 --time-limit-s \"\$left\" ${runs[i]}" \
            > >(sed -u "s/^/[run$((i + 1))] /") 2>&1 &
        pids+=($!)
    done
    for ((i = 0; i < n; i++)); do
        status=0
        wait "${pids[i]}" || status=$?
        echo "== run$((i + 1)): training ended with status $status at $((SECONDS - start)) s"
    done
    # The guidance settings the evaluations (and whoever loads the checkpoint) use, recorded in each checkpoint.
    if [[ -n ${GUIDANCE:-} ]]; then
        for ((i = 1; i <= n; i++)); do
            [[ -d $work/run$i/checkpoint ]] || continue
            # shellcheck disable=SC2086
            "$python" -m tools.checkpoint set-guidance "$work/run$i/checkpoint" $GUIDANCE > /dev/null
        done
    fi
    # Every run's evaluations at once, sharing the cores; each stops at the budget less what packing the
    # checkpoints takes (about 13 s a run on a 16-core H200 machine: a lease of 3 runs lost its checkpoints to it).
    local eval_left=$((budget - (SECONDS - start) - 15 - 15 * n)) jobs=() workers source
    (( eval_left > 0 )) || eval_left=1  # timeout 0 would mean no limit at all
    local suite=1 sources=() per_run
    [[ -n ${EVAL_ONLY-x} ]] || suite=0  # EVAL_ONLY set but empty: no eval_suite
    read -r -a sources <<< "${EVAL_SOURCES:-}"
    per_run=$((suite + ${#sources[@]}))
    workers=$(( $(nproc) / (n * (per_run > 0 ? per_run : 1)) ))
    (( workers > 0 )) || workers=1
    for ((i = 1; i <= n; i++)); do
        local run=$work/run$i
        [[ -d $run/checkpoint ]] || { echo "== run$i wrote no checkpoint"; continue; }
        if (( suite )); then
            # shellcheck disable=SC2086
            timeout "$eval_left" "$python" -m tools.eval_suite --checkpoint "$run/checkpoint" --out "$run/eval.json" \
                --workers "$workers" ${EVAL_MAX_EPISODES:+--max-episodes $EVAL_MAX_EPISODES} \
                --only ${EVAL_ONLY:-joystick-protocol omni walk-perturb stay push} \
                > >(sed -u "s/^/[run$i eval] /") 2>&1 &
            jobs+=($!)
        fi
        for source in "${sources[@]}"; do
            timeout "$eval_left" "$python" -m tools.eval_diffusion --checkpoint "$run/checkpoint" \
                --data "$work/data.h5" --source "$source" --episodes "${EVAL_EPISODES:-10}" \
                --seconds "${EVAL_SECONDS:-10}" --workers "$workers" --out "$run/source_$source.json" \
                > >(sed -u "s/^/[run$i $source] /") 2>&1 &
            jobs+=($!)
        done
    done
    for job in "${jobs[@]}"; do wait "$job" || echo "== an evaluation stopped early (status $?); its lines above hold what ended"; done
    # Back home: the log, one tar of every run's small files, and as many checkpoints as fit in 4 parts of 15 MiB,
    # each slimmed to the weights a controller loads (tools.checkpoint slim: half the size).
    local files=()
    for ((i = 1; i <= n; i++)); do
        for pattern in losses.csv train_cfg.json eval.json 'source_*.json'; do
            files+=($(cd "$work" && compgen -G "run$i/$pattern" || true))
        done
    done
    if (( ${#files[@]} )); then tar -C "$work" -cf "$out/results.tar" "${files[@]}"; fi
    local kept=() total=0 size limit=$((4 * 15 * 1024 * 1024))
    for ((i = 1; i <= n; i++)); do
        [[ -d $work/run$i/checkpoint ]] || continue
        rm -rf "$work/back/run$i"
        mkdir -p "$work/back/run$i"
        "$python" -m tools.checkpoint slim "$work/run$i/checkpoint" "$work/back/run$i/checkpoint" > /dev/null
        size=$(du -sb "$work/back/run$i/checkpoint" | cut -f1)
        if (( total + size + 10240 <= limit )); then
            kept+=("run$i/checkpoint")
            total=$((total + size))
        else
            echo "== run$i's checkpoint ($((size / 1048576)) MB) does not fit what comes back; its figures do"
        fi
    done
    if (( ${#kept[@]} )); then
        tar -C "$work/back" -cf "$work/ckpt.tar" "${kept[@]}"
        split -b 15M -d -a 2 "$work/ckpt.tar" "$out/ckpt.tar.part"
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
