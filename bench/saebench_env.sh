#!/usr/bin/env bash
# Create bench/.venv-saebench: SAEBench from the package index in its own environment (its pins -- numpy<2,
# datasets<4, sae-probes -- differ from saens's), with the same CPU torch as saens and saens itself installed
# without dependencies, so bench/saebench_check.py can hand saens SAEs to SAEBench's own code.
# Usage: bash bench/saebench_env.sh            (TORCH_SPEC=... overrides the torch requirement)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-saebench"
py="${PYTHON:-python3}"
torch_ver="$("${SAENS_PYTHON:-python}" -c 'import torch; print(torch.__version__)')"
spec="${TORCH_SPEC:-torch==$torch_ver}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "$spec"
echo "$spec" > "$venv/constraints.txt"
"$venv/bin/pip" install -q -c "$venv/constraints.txt" sae-bench
# the torchvision that SAEBench pulls in is built for another torch and breaks `import transformers`;
# no SAEBench code that this check runs needs it
"$venv/bin/pip" uninstall -q -y torchvision || true
"$venv/bin/pip" install -q --no-deps -e "$here/.."
"$venv/bin/python" -c 'import torch, sae_bench, sae_lens, saens; print("SAEBench env: sae_lens", sae_lens.__version__, "torch", torch.__version__)'
