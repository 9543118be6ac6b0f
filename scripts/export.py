"""Export a finished run's pruned model in a compressed form that is really smaller.

    python scripts/export.py outputs/2026-11-29/08-00-00            # -> <run>/export/
    python scripts/export.py <run_dir> --out exported/
    python scripts/export.py <run_dir> --hf-config gpt2              # also a save_pretrained folder

Writes `model.sparse.safetensors` (bitmask + kept values, or CSR, per tensor; dense where that is
smaller), checks it rebuilds model.safetensors bit for bit, writes `export.json` (sizes) and,
with `--hf-config`, a plain `save_pretrained` folder `hf/`. Load the compressed file with
`swp.export.sparse_format.load_compressed(path)` -> a dense state dict.

A run folder is data, never code: only a finished run is exported (results.json present and
readable), the weights are checked against the masks (every pruned weight exactly zero), and
nothing is built from the folder's config.yaml (its `_target_`s are never imported). The
architecture for `hf/` comes from your command (`--hf-config`, loaded with
trust_remote_code=False). Any refusal is one line, `error: ...`, exit status 2, and leaves no
`export/` folder behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from swp.export.compressed import export_compressed
from swp.export.hf_pretrained import save_pretrained


class ExportRefused(Exception):
    """The run folder cannot be exported; the message says why and what to do."""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run folder (results.json, model.safetensors)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run_dir>/export)")
    parser.add_argument(
        "--hf-config",
        default=None,
        help="Hugging Face config (Hub name or local folder) of the run's model, for a save_pretrained folder hf/; "
        "taken from this command, never from the run folder",
    )
    parser.add_argument(
        "--pretrained",
        choices=("auto", "always", "never"),
        default="auto",
        help="never: skip hf/ even with --hf-config; always: require --hf-config",
    )
    args = parser.parse_args(argv)
    out = args.out or args.run_dir / "export"
    created = not out.exists()
    try:
        if args.pretrained == "always" and not args.hf_config:
            raise ExportRefused(
                "--pretrained always needs --hf-config <Hub name or folder> "
                "(the architecture is never read from the run folder)"
            )
        pruned = check_run_folder(args.run_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = export_compressed(args.run_dir / "model.safetensors", out / "model.sparse.safetensors", pruned)
        report["hf_dir"] = None
        if args.hf_config and args.pretrained != "never":
            model = _hf_model(args.hf_config, args.run_dir / "model.safetensors")
            saved = save_pretrained(model, out / "hf")
            report["hf_dir"] = str(saved) if saved else None
        (out / "export.json").write_text(json.dumps(report, indent=2))
    except (ExportRefused, OSError, ValueError, KeyError, RuntimeError) as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)  # no half-made export/ left behind
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    _print(report, out)
    return report


def check_run_folder(run_dir: Path) -> list[str] | None:
    """Checks that `run_dir` holds a finished, undamaged run; returns its pruned tensors' names.

    Reads data only (JSON and safetensors); config.yaml is not read at all.

    Raises:
        ExportRefused: not a run folder, unfinished, damaged, or weights not zero where pruned.
    """
    import torch

    weights_path, masks_path, results_path = (
        run_dir / "model.safetensors",
        run_dir / "masks.safetensors",
        run_dir / "results.json",
    )
    if not run_dir.is_dir():
        raise ExportRefused(f"{run_dir} is not a folder: give a finished run folder")
    if not results_path.is_file():
        raise ExportRefused(
            f"{run_dir} holds no finished run (no results.json): "
            f"finish or resume the run first (python train.py resume={run_dir})"
        )
    try:
        results = json.loads(results_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportRefused(
            f"{results_path} is damaged ({str(exc).splitlines()[0]}); re-run the run to rewrite it"
        ) from None
    if not isinstance(results, dict):
        raise ExportRefused(f"{results_path} is damaged (not a mapping of results); re-run the run to rewrite it")
    if not weights_path.is_file():
        raise ExportRefused(f"{weights_path} not found: is {run_dir} a finished run folder?")
    weights = _load_or_refuse(weights_path)
    if not masks_path.is_file():
        return None  # nothing was pruned (pruner=none)
    masks = _load_or_refuse(masks_path)
    for name, keep in masks.items():
        w = weights.get(name)
        if w is None:
            raise ExportRefused(
                f"{masks_path} names {name}, which {weights_path} does not hold: the files are of different runs"
            )
        if keep.dtype != torch.bool or keep.shape != w.shape:
            raise ExportRefused(
                f"{masks_path}: the mask of {name} has shape {tuple(keep.shape)} ({keep.dtype}), "
                f"the weight {tuple(w.shape)}: the files are of different runs"
            )
        bad = int((w[~keep] != 0).sum())
        if bad:
            raise ExportRefused(
                f"{weights_path}: {bad} weights of {name} are not zero where its mask prunes them; "
                "the weights were changed after the run (re-run it, or export its last checkpoint's run)"
            )
    return list(masks)


def _hf_model(hf_config: str, weights_path: Path):
    """A Hugging Face causal LM of the architecture named on the command line, with the run's
    weights; no code from the Hub or the run folder runs (trust_remote_code=False)."""
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(hf_config, trust_remote_code=False)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except Exception as exc:
        raise ExportRefused(
            f"--hf-config {hf_config!r} cannot be loaded ({str(exc).strip().splitlines()[0]})"
        ) from None
    try:
        load_model(model, str(weights_path))
    except (RuntimeError, ValueError) as exc:
        raise ExportRefused(
            f"{weights_path} does not fit --hf-config {hf_config!r} ({str(exc).strip().splitlines()[0]})"
        ) from None
    return model


def _print(r: dict, out: Path) -> None:
    print(
        f"dense {r['dense_file_bytes']:,} B -> compressed {r['compressed_file_bytes']:,} B "
        f"(ratio {r['file_ratio']:.3f}; sparsity overall {r['sparsity_overall']:.1%}; "
        f"encodings {r['encodings']}; bit-identical rebuild: {r['bit_identical']})"
    )
    if "pruned_ratio" in r:
        print(
            f"pruned tensors: {r['pruned_dense_bytes']:,} B -> {r['pruned_stored_bytes']:,} B "
            f"(ratio {r['pruned_ratio']:.3f} at sparsity {r['sparsity_pruned_tensors']:.1%})"
        )
    if r["hf_dir"]:
        print(f"save_pretrained: {r['hf_dir']}")
    print(f"written: {out}")


def _load_or_refuse(path: Path) -> dict:
    """The tensors of a safetensors file; a damaged file is a one-line refusal."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ExportRefused(f"{path} is damaged ({str(exc).splitlines()[0]}); re-run the run to rewrite it") from None


if __name__ == "__main__":
    main()

