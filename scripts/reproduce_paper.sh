#!/usr/bin/env bash
# The commands behind the paper's figures, at CPU scale (this repository's measured table in
# REPRODUCTION.md) or at paper scale (a GPU cluster with SLURM).
#   scripts/reproduce_paper.sh cpu      # about 40 min on 2 busy cores (2 jobs x 1 thread)
#   scripts/reproduce_paper.sh paper    # 27 GPU jobs via SLURM; set PARTITION first
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
SCALE=${1:-cpu}

case "$SCALE" in
cpu)
  # Fig. 3 (LM loss vs compression): 9 sparsities x {swp, magnitude, random}; the dense phase is
  # trained once per tracking kind and shared (dense_cache). Shorter than schedule=paper so it
  # fits a laptop: 600 dense steps (100 tracking points) + 100 fine-tuning steps per job.
  $PY train.py experiment=paper_lm_sweep hydra.sweep.dir=outputs/sweeps/paper_lm_cpu \
    schedule.train_steps=600 schedule.track_every=6 schedule.finetune_steps=100 \
    schedule.warmup_steps=30 schedule.finetune_warmup_steps=10 schedule.eval_every=0
  # Control: the same dense model fine-tuned as long, unpruned (what fine-tuning alone gains).
  $PY train.py pruner=none threads=1 schedule.train_steps=600 schedule.track_every=6 schedule.finetune_steps=100 \
    schedule.warmup_steps=30 schedule.finetune_warmup_steps=10 schedule.eval_every=0 \
    output_dir=outputs/sweeps/paper_lm_cpu/control_none
  $PY scripts/sweep_table.py outputs/sweeps/paper_lm_cpu --figure outputs/sweeps/paper_lm_cpu/fig3.png
  # Fig. 4 (price MAE vs compression) on the diamonds price task:
  $PY train.py experiment=price_sweep hydra.sweep.dir=outputs/sweeps/price_cpu
  $PY scripts/sweep_table.py outputs/sweeps/price_cpu --figure outputs/sweeps/price_cpu/fig4.png
  ;;
paper)
  : "${PARTITION:?set PARTITION to your SLURM GPU partition}"
  SLURM="hydra/launcher=slurm hydra.launcher.partition=$PARTITION hydra.launcher.gpus_per_node=1 hydra.launcher.timeout_min=240 hydra.launcher.mem_gb=64 threads=null"
  # Fig. 3 at paper scale: the 10.7M GPT, batch 64 x 256, 5,000 dense steps (100 tracking points).
  $PY train.py experiment=paper_lm_sweep $SLURM hydra.sweep.dir=outputs/sweeps/paper_lm \
    model=gpt_paper precision=bf16 dataset.batch_size=64 dataset.eval_batches=200 \
    schedule.train_steps=5000 schedule.track_every=50 schedule.finetune_steps=1000
  $PY train.py -m pruner=none $SLURM hydra.sweep.dir=outputs/sweeps/paper_lm_control model=gpt_paper precision=bf16 dataset.batch_size=64 dataset.eval_batches=200 \
    schedule.train_steps=5000 schedule.track_every=50 schedule.finetune_steps=1000 output_dir=outputs/sweeps/paper_lm/control_none
  $PY scripts/sweep_table.py outputs/sweeps/paper_lm --figure outputs/sweeps/paper_lm/fig3.png
  $PY train.py experiment=price_sweep $SLURM hydra.sweep.dir=outputs/sweeps/price
  $PY scripts/sweep_table.py outputs/sweeps/price --figure outputs/sweeps/price/fig4.png
  ;;
*) echo "usage: $0 cpu|paper" >&2; exit 2 ;;
esac
# Figs. 1-2 (weight trajectories): every run folder above holds fig1_trajectories.png,
# fig2_patterns.png and trajectories.npz (e.g. the swp job of any sparsity); every sweep folder also
# gets sweep_results.csv and fig3_compression_loss.png / fig4_compression_mae.png from the sweep
# callback (rebuild with scripts/plot_sweep.py <sweep folder>).
