#!/usr/bin/env bash
# Create one virtualenv per peer library under benchmarks/.venv-<peer>/ (git-ignored).
# Pins follow shared/PEERS.md. Usage: bash benchmarks/setup_peers.sh [implicit] [recbole] [rectools]
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(implicit recbole)

for peer in "${peers[@]}"; do
  venv=".venv-$peer"
  stamp="$venv/.installed"
  if [ -f "$stamp" ]; then echo "[setup] $venv ready"; continue; fi
  test -x "$venv/bin/python" || "$PYTHON" -m venv "$venv"
  pip="$venv/bin/python -m pip"
  $pip install -q --upgrade pip
  case "$peer" in
    implicit)
      $pip install -q 'implicit==0.7.3' 'numpy<2.5' scipy psutil
      ;;
    recbole)
      # torch first (CPU build), then recbole, then the pins RecBole 1.2.1 needs
      $pip install -q 'torch==2.13.0'
      $pip install -q 'recbole==1.2.1'
      $pip install -q 'numpy<2' 'pandas<2.3' 'setuptools<81' psutil
      ;;
    rectools)
      # torch first (CPU build), then RecTools with its torch extra (SASRec, BERT4Rec)
      $pip install -q 'torch==2.13.0'
      $pip install -q 'rectools[torch]==0.19.0' psutil
      ;;
    *) echo "unknown peer: $peer" >&2; exit 2 ;;
  esac
  touch "$stamp"
  echo "[setup] $venv installed"
done
