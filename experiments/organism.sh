#!/usr/bin/env bash
# Reproduces results/organism/ (issue: train the built-in model and reproduce sink-collapse and its cures).
# Sized for a 2-core CPU: two prompts x three seeds per setting, joblib with two single-threaded workers.
# Total about an hour on 2 cores after training (python -m lolbench.train, about 50 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
SWEEP=(hydra/launcher=joblib hydra.launcher.n_jobs=2 prompt=meadow,ocean)

python analysis/organism.py rollout                        # window sink, 2,000 frames, model vs world
python run.py +experiment=world "${SWEEP[@]}"              # chance level: the procedural world itself
python run.py +experiment=phase "${SWEEP[@]}"              # 200 s, probe every chunk, sigma 0 and 0.8
python run.py +experiment=sigma "${SWEEP[@]}"
python run.py +experiment=heads "${SWEEP[@]}"
python run.py +experiment=rope_methods "${SWEEP[@]}"
python run.py +experiment=sinks "${SWEEP[@]}"
python run.py +experiment=positions "${SWEEP[@]}"
python analysis/organism.py collapse                       # events vs C(Δ) maxima, kernels, head homogeneity
python analysis/make_figures.py
