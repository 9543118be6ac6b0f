"""llm-compressor's side of scripts/bench_peer_llmcompressor.py: run by that script with the
python of llm-compressor's own venv (it pins transformers <= 5.17), never imported by swp.

    V/bin/python scripts/peer_llmcompressor_worker.py --method wanda --model DIR --calib calib.json \
        --out DIR --threads 1 --result result.json

Prunes the plain Hugging Face folder `--model` to 50% with `oneshot` and `WandaPruningModifier`
or `SparseGPTModifier` (unstructured, every decoder Linear, the head ignored), calibrated on
exactly the token rows in `--calib` (no shuffling, no tokenizing), saves the dense weights with
their zeros, and writes the seconds (wall and this process's CPU) and the peak resident memory
of the `oneshot` call. Standard library, torch and llm-compressor only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import threading
import time


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class Measured:
    """Wall and CPU seconds of a block, and the peak resident set during it (sampled every 5 ms),
    also above the resident set just before (after malloc_trim): the same as swp's side."""

    def __enter__(self):
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        self.start_rss = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def modifier(method: str, sparsity: float):
    from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

    common = dict(sparsity=sparsity, mask_structure="0:0", targets=["Linear"], ignore=["re:.*lm_head"])
    if method == "sparsegpt":  # the reference's block of 128 columns and 1% dampening, as swp's defaults
        return SparseGPTModifier(**common, block_size=128, dampening_frac=0.01)
    return WandaPruningModifier(**common)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=("wanda", "sparsegpt"), required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--calib", required=True, help="JSON list of token-id rows")
    ap.add_argument("--out", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sparsity", type=float, default=0.5)
    args = ap.parse_args()
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    rows = json.loads(open(args.calib).read())
    data = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]})
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    with torch.no_grad():  # every weight read once: a lazily mapped checkpoint's pages are in memory
        for t in [*model.parameters(), *model.buffers()]:
            t.sum()
    with Measured() as m:
        oneshot(model=model, dataset=data, recipe=modifier(args.method, args.sparsity),
                num_calibration_samples=len(rows), max_seq_length=len(rows[0]), shuffle_calibration_samples=False)
    model.save_pretrained(args.out, save_compressed=False)
    import llmcompressor

    result = {"tool": f"llm-compressor {llmcompressor.__version__}", "method": args.method, "wall_s": m.wall,
              "cpu_s": m.cpu, "peak_rss": m.peak, "rss_growth": m.peak - m.start_rss, "out": args.out,
              "calibration_tokens": sum(len(r) for r in rows), "threads": torch.get_num_threads()}
    open(args.result, "w").write(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
