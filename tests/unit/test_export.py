"""Compressed export: exact rebuild on hand-made tensors, sizes, a real run, HF save_pretrained."""


import pytest
import torch
from safetensors.torch import save_file, save_model

from scripts import export as export_script
from swp.export.compressed import export_compressed
from swp.export.hf_pretrained import save_pretrained
from swp.export.sparse_format import bit_identical, compress, decompress, load_compressed, save_compressed


def _pruned(shape, sparsity, seed=0, dtype=torch.float32):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    k = int(sparsity * w.numel())
    if k:
        w[w.abs() <= w.abs().flatten().kthvalue(k).values] = 0
    return w.to(dtype)


def test_encodings_are_chosen_by_size_and_sizes_are_exact():
    tensors = {
        "dense2": _pruned((64, 128), 0.02),  # a bitmask pays off only beyond 1/32 zeros
        "bitmask60": _pruned((64, 128), 0.6),
        "csr99": _pruned((64, 128), 0.99),
        "nm24": _pruned((64, 128), 0.0) * torch.tensor([1.0, 0.0, 1.0, 0.0]).repeat(32),
    }
    _, index = compress(tensors)
    assert {n: i["encoding"] for n, i in index.items()} == {
        "dense2": "dense", "bitmask60": "bitmask", "csr99": "csr", "nm24": "bitmask"}
    n = 64 * 128
    # bitmask: one bit per element + 4 bytes per kept value -> 1/32 + 0.4 = 0.43125 of dense.
    assert index["bitmask60"]["stored_bytes"] == n // 8 + (n - int(0.6 * n)) * 4
    assert index["bitmask60"]["stored_bytes"] / index["bitmask60"]["dense_bytes"] == pytest.approx(0.43125, abs=1e-4)
    # csr: 65 int32 row pointers + (uint8 column, fp32 value) per kept value.
    kept = int((tensors["csr99"] != 0).sum())
    assert index["csr99"]["stored_bytes"] == 65 * 4 + kept * 5


def test_rebuild_is_bit_identical_including_negative_zeros_nan_and_odd_shapes():
    neg = -torch.rand(6, 10).add(0.1)
    neg[:, ::3] *= 0.0  # -0.0 entries, which must come back as -0.0
    nan = _pruned((4, 40), 0.7)
    nan[0, 0] = float("nan")
    tensors = {
        "negzero": neg, "nan": nan, "bf16": _pruned((32, 64), 0.6, dtype=torch.bfloat16),
        "fp16_csr": _pruned((8, 300), 0.98, dtype=torch.float16), "vector": _pruned((100,), 0.9),
        "cube": _pruned((3, 4, 64), 0.8), "allzero": torch.zeros(5, 16), "scalar": torch.tensor(0.0),
        "int": torch.tensor([0, 0, 0, 0, 0, 0, 0, 7]), "bool": torch.tensor([True, False]),
    }
    stored, index = compress(tensors)
    assert index["negzero"]["encoding"] == "bitmask" and "negzero::negzero" in stored
    assert index["fp16_csr"]["encoding"] == "csr" and stored["fp16_csr::indices"].dtype == torch.int16
    rebuilt = decompress(stored, index)
    for name, t in tensors.items():
        assert bit_identical(t, rebuilt[name]), name
    assert torch.signbit(rebuilt["negzero"][:, 0]).all()
    # The check itself can fail: +0.0 is not -0.0 bit for bit.
    assert not bit_identical(torch.tensor([-0.0]), torch.tensor([0.0]))


def test_save_and_load_file_roundtrip(tmp_path):
    tensors = {"a": _pruned((32, 64), 0.6), "b": torch.randn(7)}
    save_compressed(tmp_path / "m.safetensors", tensors, metadata={"note": "x"})
    back = load_compressed(tmp_path / "m.safetensors")
    assert set(back) == {"a", "b"} and all(bit_identical(tensors[n], back[n]) for n in tensors)
    save_file(tensors, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a swp-sparse-v1 file"):
        load_compressed(tmp_path / "plain.safetensors")


def test_hugging_face_model_export_and_reload(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2)).eval()
    with torch.no_grad():  # prune 60% of every block matrix by magnitude
        for name, p in model.named_parameters():
            if p.dim() == 2 and ".h." in name:
                p.mul_(p.abs() > p.abs().flatten().kthvalue(int(0.6 * p.numel())).values).add_(0.0)
    save_model(model, str(tmp_path / "model.safetensors"))
    report = export_compressed(tmp_path / "model.safetensors", tmp_path / "sparse.safetensors")
    assert report["bit_identical"]
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        assert report["tensors"][f"transformer.h.0.{name}.weight"]["encoding"] == "bitmask"

    hf_dir = save_pretrained(model, tmp_path / "hf")
    reloaded = GPT2LMHeadModel.from_pretrained(str(hf_dir)).eval()
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values()):
        assert bit_identical(a, b), name
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert save_pretrained(torch.nn.Linear(2, 2), tmp_path / "none") is None


def test_export_script_rejects_a_folder_without_a_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        export_script.main([str(tmp_path)])
    assert not (tmp_path / "export").exists()
