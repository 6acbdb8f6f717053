#!/usr/bin/env bash
# The GPU checks of the issue "Protocol v4 at no extra cost" in one short run (for a lent GPU machine; see
# benchmarks/README.md):
#   1. benchmarks/devices.py: the training loop's examples/s on the CPU and the GPU (the study's CNN; ResNet-20's
#      were measured by an earlier speed issue and are not taken again)
#   2. benchmarks/stacking.py on CUDA: M models stacked against one after another
#   3. benchmarks/cuda_graphs.py: the stacked training step captured as a CUDA graph against eager, batch 16 to 1024
#   4. the smoke profile on CUDA, end to end (papermill, Dask, findings, report)
#   5. the v4 default profile on the GPU, every model stacked, $QUICK_WORKERS workers: its wall time against the
#      goal of 120 s, and its per-job seconds (as many jobs as finish in $QUICK_S seconds)
# Each step has its own time limit, so one that fails or runs long leaves the others their time; all of them
# fit in about 9.5 minutes (a device call's limit is 10).
#   OUT=/tmp/gpu bash benchmarks/gpu_checks.sh        (OUT: where gpu_checks.tgz, every log and table, goes)
# Python packages the machine lacks come as wheels in .whl/ (installed into /tmp/site when present).
set -u
OUT=${OUT:-/tmp/gpu-checks}
LOGS=$(mktemp -d)  # packed into one file at the end: a device call brings back at most 8 files
QUICK_S=${QUICK_S:-280}
QUICK_WORKERS=${QUICK_WORKERS:-8}
mkdir -p "$OUT"
trap 'tar czf "$OUT/gpu_checks.tgz" -C "$LOGS" .' EXIT
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >"$LOGS/pip.log" 2>&1 || { echo "wheel install failed"; tail -5 "$LOGS/pip.log"; }
    export PYTHONPATH=/tmp/site:$PWD
    export PATH=/tmp/site/bin:$PATH
    export JUPYTER_PATH=/tmp/site/share/jupyter  # nbconvert's templates, installed beside the wheels
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
step() {  # step NAME SECONDS COMMAND...: run it with a limit, log to $LOGS/NAME.log, say how it ended
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - t0)) s"
    tail -n 25 "$LOGS/$name.log"
}
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nproc
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} 2>&1 | tee "$LOGS/machine.log"

step devices-cnn 40 python3 benchmarks/devices.py --model cnn --width 25 --shape 40 --n 4000 \
    --batch-sizes 16 32 256 1024 --epochs 3
step stacking 60 python3 benchmarks/stacking.py --device cuda --models 1 8 --batch-sizes 16 32 256 1024 --rounds 2
step cuda-graphs 75 python3 benchmarks/cuda_graphs.py --device cuda --models 8 --batch-sizes 16 32 256 1024 --rounds 3

sed 's/^  device: cpu/  device: cuda/' params/smoke.yaml >/tmp/smoke-cuda.yaml
step smoke-cuda 100 python3 -m bsnb.cli run /tmp/smoke-cuda.yaml --out /tmp/smoke-cuda --quiet
step quick-cuda "$QUICK_S" python3 -m bsnb.cli run quick --out /tmp/quick-cuda --workers "$QUICK_WORKERS" --quiet

# per-job seconds of whatever finished, from each job's status.json
python3 - <<'EOF' 2>&1 | tee "$LOGS/job_seconds.csv"
import json, pathlib
for root in ("/tmp/smoke-cuda", "/tmp/quick-cuda"):
    for f in sorted(pathlib.Path(root).glob("runs/*/status.json")):
        s = json.loads(f.read_text())
        print(f"{pathlib.Path(root).name},{f.parent.name},{s.get('status')},{s.get('seconds', 0):.1f}")
EOF
# what the findings concluded, and their executed notebook (its traceback, where they failed)
for p in smoke quick; do
    cp /tmp/$p-cuda/claims.csv "$LOGS/$p-claims.csv" 2>/dev/null
    cp /tmp/$p-cuda/05_findings.ipynb "$LOGS/$p-findings.ipynb" 2>/dev/null
done
