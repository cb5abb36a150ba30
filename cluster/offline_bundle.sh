#!/usr/bin/env bash
# Pack what dynamics needs beyond a CUDA PyTorch image into one archive, for GPU nodes that reach no package
# index (air-gapped clusters, locked-down workstations): the node unpacks it and puts it first on PYTHONPATH.
#
#   bash cluster/offline_bundle.sh [OUT.tar.xz]          # from the repository root, with .venv installed
#   # on the node:  mkdir -p /opt/dyn && tar -C /opt/dyn -xJf OUT.tar.xz
#   #               PYTHONPATH=/opt/dyn:$PWD python -m bench.gpu_check --out gpu_check.json
#
# Versions are this checkout's `.venv` (what CI tests), as wheels for the node's Python (PY_VERSION, default 3.12)
# on x86_64 Linux. Left out: torch and the CUDA stack, and every package named in SKIP (a regular expression of
# distribution names; the default is what CUDA PyTorch images commonly hold: numpy, pandas, pyarrow, …). Ray
# loses its Java jars, RLlib, Serve, its LLM library and the dashboard's web build; MLflow its web UI — none of
# which a sweep uses — which brings the archive from ~330 MB unpacked to ~45 MB (xz). DeepSpeed and rouge-score
# ship only as sources: they are built into wheels here.
set -euo pipefail

OUT=${1:-dynamics-offline-bundle.tar.xz}
PY_VERSION=${PY_VERSION:-3.12}
SKIP=${SKIP:-'^(torch|torchvision|torchaudio|triton|nvidia-.*|dynamics|numpy|pandas|pyarrow|scipy|scikit-learn|sympy|mpmath|networkx|pillow|jinja2|markupsafe|pyyaml|requests|urllib3|idna|certifi|charset-normalizer|packaging|filelock|fsspec|typing-extensions|six|python-dateutil|tqdm|psutil|regex|safetensors|tokenizers|sentencepiece|msgpack|protobuf|click|attrs|aiohttp|.*sentence-transformers|pytest|hypothesis|ruff)$'}
ONLY=${ONLY:-}  # a regular expression: pack only these (a partial bundle, or a quick check of this script)
VENV=${VENV:-.venv}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$VENV/bin/python" -m pip list --format=freeze --exclude-editable | tr 'A-Z_' 'a-z-' | sed 's/==/ /' \
  | while read -r name version; do
      if [[ -n $ONLY ]]; then [[ $name =~ $ONLY ]] && echo "$name==$version"; continue; fi
      [[ $name =~ $SKIP ]] || echo "$name==$version"
    done > "$WORK/wanted.txt"
echo "packing $(wc -l < "$WORK/wanted.txt") distributions for Python $PY_VERSION"

mkdir -p "$WORK/wheels"
platforms=()
for tag in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
while read -r requirement; do
  if ! "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
      --implementation cp "${platforms[@]}" -d "$WORK/wheels" "$requirement" 2>/dev/null; then
    # A source-only release (DeepSpeed, rouge-score): pure Python, built into a wheel with this venv's torch.
    "$VENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" "$requirement"
  fi
done < "$WORK/wanted.txt"

"$VENV/bin/python" -m pip install -q --no-deps --no-compile --target "$WORK/site" --python-version "$PY_VERSION" \
  --implementation cp "${platforms[@]}" --only-binary=:all: "$WORK"/wheels/*.whl
rm -rf "$WORK"/site/ray/{jars,rllib,serve,llm} "$WORK/site/ray/dashboard/client/build" "$WORK/site/mlflow/server/js"
find "$WORK/site" -name __pycache__ -prune -exec rm -rf {} +
tar -C "$WORK/site" -cf - . | xz -9 -T0 > "$OUT"
echo "wrote $OUT ($(du -h "$OUT" | cut -f1)); unpacked $(du -sh "$WORK/site" | cut -f1)"
