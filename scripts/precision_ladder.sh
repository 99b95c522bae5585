#!/usr/bin/env bash
# The precision ladder of the default model, as reported in BENCHMARKS.md:
# FP32 -> FP16 -> INT8 (TensorRT and CPU targets) ONNX files, each checked on Set12 at sigma 25
# (ONNX Runtime, CPU), INT8 calibrated on CBSD432 (never on the images it is checked on);
# engines where TensorRT (or TensorRT-RTX) is installed; then the speed table.
# Usage: scripts/precision_ladder.sh [DATASETS_DIR] [OUT_DIR]
set -euo pipefail
DATA=${1:-../shared/datasets}
OUT=${2:-runs/ladder}
MODEL=checkpoints/default-color.safetensors
mkdir -p "$OUT/engines"
check=(--check-dir "$DATA/Set12" --check-sigma 25)
denoiser export "$MODEL" -o "$OUT/default-color-fp32.onnx" "${check[@]}"
from=(--from-fp32 "$OUT/default-color-fp32.onnx")
denoiser export "$MODEL" --precision fp16 -o "$OUT/default-color-fp16.onnx" "${from[@]}" "${check[@]}"
denoiser export "$MODEL" --precision int8 --target tensorrt --calib "$DATA/CBSD432" \
    -o "$OUT/default-color-int8-tensorrt.onnx" "${from[@]}" "${check[@]}"
denoiser export "$MODEL" --precision int8 --target cpu --calib "$DATA/CBSD432" \
    -o "$OUT/default-color-int8-cpu.onnx" "${from[@]}" "${check[@]}"
if python -c "import denoiser.deploy.tensorrt as t; t.import_tensorrt()" 2>/dev/null; then
    for p in fp32 fp16 int8-tensorrt; do  # TensorRT-RTX builds these without a GPU, too
        python - "$OUT/default-color-$p.onnx" "$OUT/engines/default-color-$p.engine" <<'PY'
import sys
from denoiser.deploy.tensorrt import EngineProfile, build_engine
side = build_engine(sys.argv[1], sys.argv[2], EngineProfile(max_batch=4, opt_hw=(640, 640), max_hw=(1024, 1024)),
                    workspace_mb=4096)
print(f"wrote {sys.argv[2]}: {side['flavour']} {side['tensorrt_version']}, {side['precision']}")
PY
    done
fi
denoiser bench --sizes 512x512,1920x1080,3840x2160 --workdir "$OUT" --calib "$DATA/CBSD432" \
    --check-dir "$DATA/Set12" --json "$OUT/bench.json"
