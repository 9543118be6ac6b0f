"""Export a finished run's pruned model in a compressed form that is really smaller.

    python scripts/export.py outputs/2026-11-29/08-00-00            # -> <run>/export/
    python scripts/export.py <run_dir> --out exported/ --pretrained never

Writes `model.sparse.safetensors` (bitmask + kept values, or CSR, per tensor; dense where that is
smaller), checks it rebuilds model.safetensors bit for bit, writes `export.json` (sizes) and,
for Hugging Face models, a plain `save_pretrained` folder `hf/`. Load the compressed file with
`swp.export.sparse_format.load_compressed(path)` -> a dense state dict.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from swp.export.compressed import export_compressed, export_pretrained  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder holding model.safetensors")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run_dir>/export)")
    parser.add_argument(
        "--pretrained", choices=("auto", "always", "never"), default="auto",
        help="save_pretrained export: auto = when the run's model class has save_pretrained",
    )
    args = parser.parse_args(argv)
    run_dir, out = args.run_dir, args.out or args.run_dir / "export"
    dense_path = run_dir / "model.safetensors"
    if not dense_path.is_file():
        parser.error(f"{dense_path} not found: is {run_dir} a finished run folder?")
    out.mkdir(parents=True, exist_ok=True)

    pruned = None
    if (run_dir / "masks.safetensors").is_file():
        from safetensors import safe_open

        with safe_open(str(run_dir / "masks.safetensors"), framework="pt") as f:
            pruned = list(f.keys())
    report = export_compressed(dense_path, out / "model.sparse.safetensors", pruned)
    report["hf_dir"] = None
    if args.pretrained != "never":
        model = _build_model(run_dir, force=args.pretrained == "always")
        if model is not None:
            saved = export_pretrained(model, out / "hf")
            report["hf_dir"] = str(saved) if saved else None
    (out / "export.json").write_text(json.dumps(report, indent=2))
    _print(report, out)
    return report


def _build_model(run_dir: Path, force: bool):
    """The run's model with its trained weights, built from its saved config; None when the
    model class cannot `save_pretrained` (checked before building anything, unless forced)."""
    from hydra.utils import get_object, instantiate
    from omegaconf import OmegaConf
    from safetensors.torch import load_model

    cfg = OmegaConf.load(run_dir / "config.yaml")
    target = get_object(cfg.model._target_)
    # A class without save_pretrained (our GPT) needs no data loading to rule it out;
    # a factory function might return a Hugging Face model, so it is built and asked.
    if not force and inspect.isclass(target) and not hasattr(target, "save_pretrained"):
        return None
    task = instantiate(cfg.dataset)
    model = instantiate(cfg.model, **task.model_kwargs())
    load_model(model, str(run_dir / "model.safetensors"))
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


if __name__ == "__main__":
    main()
