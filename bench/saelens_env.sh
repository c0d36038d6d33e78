#!/usr/bin/env bash
# Create bench/.venv-saelens: SAELens from PyPI in its own environment, with the same CPU torch as saens,
# so benchmark 1 compares the two libraries and not two torch builds.
# Usage: bash bench/saelens_env.sh            (TORCH_SPEC=... overrides the torch requirement, e.g. for CUDA)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-saelens"
py="${PYTHON:-python3}"
# the torch that saens runs on, e.g. 2.13.0+cpu; pinned in the SAELens env too
torch_ver="$("${SAENS_PYTHON:-python}" -c 'import torch; print(torch.__version__)')"
spec="${TORCH_SPEC:-torch==$torch_ver}"
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
if ! "$venv/bin/pip" install -q "$spec"; then
  echo "could not install $spec into $venv: set TORCH_SPEC to a torch your package index has (and PIP_INDEX_URL / PIP_EXTRA_INDEX_URL if needed)" >&2
  exit 1
fi
echo "$spec" > "$venv/constraints.txt"
"$venv/bin/pip" install -q -c "$venv/constraints.txt" "sae-lens${SAELENS_SPEC:-}"
"$venv/bin/python" -c 'import torch, sae_lens; print("SAELens", sae_lens.__version__, "torch", torch.__version__)'
