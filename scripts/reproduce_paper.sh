#!/usr/bin/env bash
# The commands behind the paper's figures, at CPU scale (this repository's measured table in
# REPRODUCTION.md) or at paper scale (a GPU cluster with SLURM).
#   scripts/reproduce_paper.sh cpu      # hours on 2 busy cores (2 jobs x 1 thread): 84 + 33 + 63 jobs
#   scripts/reproduce_paper.sh paper    # 84 + 33 GPU jobs via SLURM; set PARTITION first
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
SCALE=${1:-cpu}

case "$SCALE" in
cpu)
  # Fig. 3 (LM loss vs compression): 9 sparsities x {swp, magnitude, random} x seeds 1,2,3, plus
  # the unpruned control (pruner=none fine-tuned on the same schedule) once per seed, added by
  # the sweeper (hydra/sweeper=swp). The dense phase is trained once per seed and shared
  # (dense_cache). Shorter than schedule=paper: 600 dense steps (100 tracking points) + 100
  # fine-tuning steps per job. One seed: add hydra.sweeper.params.seed=1337.
  $PY train.py experiment=paper_lm_sweep hydra.sweep.dir=outputs/sweeps/paper_lm_cpu \
    schedule.train_steps=600 schedule.track_every=6 schedule.finetune_steps=100 \
    schedule.warmup_steps=30 schedule.finetune_warmup_steps=10 schedule.eval_every=0
  $PY scripts/sweep_table.py outputs/sweeps/paper_lm_cpu --compare swp magnitude --compare swp none
  # Fig. 4 (price MAE vs compression) on the diamonds price task: 5 sparsities x {swp, magnitude}
  # x 3 seeds + the control, half the experiment=price schedule (see conf/experiment/price_sweep.yaml).
  $PY train.py experiment=price_sweep hydra.sweep.dir=outputs/sweeps/price_cpu
  $PY scripts/sweep_table.py outputs/sweeps/price_cpu --compare swp magnitude --compare swp none
  # SWP's open choices (average_of, compare, window, scope) at 30/50/70/90% with 3 seeds.
  $PY train.py experiment=swp_variants_sweep hydra.sweep.dir=outputs/sweeps/swp_variants_cpu
  $PY scripts/sweep_table.py outputs/sweeps/swp_variants_cpu --compare swp_signed swp --compare swp_current swp \
    --compare swp_window swp --compare swp_global swp
  ;;
paper)
  : "${PARTITION:?set PARTITION to your SLURM GPU partition}"
  SLURM="hydra/launcher=slurm hydra.launcher.partition=$PARTITION hydra.launcher.gpus_per_node=1 hydra.launcher.timeout_min=240 hydra.launcher.mem_gb=64 threads=null"
  # Fig. 3 at paper scale: the 10.7M GPT, batch 64 x 256, 5,000 dense steps (100 tracking points),
  # 3 seeds and the control (added by the sweeper).
  $PY train.py experiment=paper_lm_sweep $SLURM hydra.sweep.dir=outputs/sweeps/paper_lm \
    model=gpt_paper precision=bf16 dataset.batch_size=64 dataset.eval_batches=200 \
    schedule.train_steps=5000 schedule.track_every=50 schedule.finetune_steps=1000
  $PY scripts/sweep_table.py outputs/sweeps/paper_lm --compare swp magnitude --compare swp none
  $PY train.py experiment=price_sweep $SLURM hydra.sweep.dir=outputs/sweeps/price \
    schedule.train_steps=2000 schedule.track_every=20 schedule.finetune_steps=400 schedule.warmup_steps=100
  $PY scripts/sweep_table.py outputs/sweeps/price --compare swp magnitude --compare swp none
  ;;
*) echo "usage: $0 cpu|paper" >&2; exit 2 ;;
esac
# Figs. 1-2 (weight trajectories): every run folder above holds fig1_trajectories.png,
# fig2_patterns.png and trajectories.npz (e.g. the swp job of any sparsity); every sweep folder also
# gets sweep_results.csv (per job), sweep_aggregate.csv (mean / std / n over seeds per point) and
# fig3_compression_loss.png / fig4_compression_mae.png with their .json data from the sweep
# callback (rebuild with scripts/plot_sweep.py <sweep folder> [--band minmax]).
