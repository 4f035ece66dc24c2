"""Model files the reader and CLI tests write into tmp_path: a tiny Llama as safetensors (single file, sharded with
an index, GPTQ-quantized), as GGUF, and inside a Hugging Face cache folder layout. No network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# A 2-layer Llama: hidden 64, 4 heads of 16, 2 KV heads, MLP 128, vocab 256.
TINY_LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
# Its parameters by hand: embed 256*64 + lm_head 256*64 + final norm 64
#   + per layer: q 64*64, k 64*32, v 64*32, o 64*64, gate/up/down 3*64*128, 2 norms of 64.
TINY_LLAMA_PARAMS = 2 * 256 * 64 + 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 2 * 64)


def tiny_llama_shapes(config: dict[str, Any] = TINY_LLAMA) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of HF LlamaForCausalLM (out_features, in_features)."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    d = h // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * d
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h), "model.norm.weight": (h,),
                                          "lm_head.weight": (vocab, h)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                   p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                   p + "mlp.down_proj.weight": (h, inter), p + "input_layernorm.weight": (h,),
                   p + "post_attention_layernorm.weight": (h,)}
    return shapes


def _bf16(shape: tuple[int, ...]) -> np.ndarray:
    # numpy has no bfloat16: safetensors.numpy writes the dtype of the array, so fp16 stands in where the
    # dtype does not matter; bf16 files are written through the torch-free byte layout below.
    return np.zeros(shape, dtype=np.float16)


def write_safetensors_bf16(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """A safetensors file with BF16 tensors, laid out as the format defines (8-byte header length, JSON
    header, data): numpy cannot hold bf16, so the bytes are written directly."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + bytes(offset))


def make_snapshot(tmp_path: Path) -> Path:
    """A single-file bf16 snapshot: config.json + model.safetensors."""
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA))
    write_safetensors_bf16(folder / "model.safetensors", tiny_llama_shapes())
    return folder


def make_sharded_snapshot(tmp_path: Path) -> Path:
    """Two shards + model.safetensors.index.json (weight_map, metadata.total_size)."""
    folder = tmp_path / "tiny-llama-sharded"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA))
    shapes = tiny_llama_shapes()
    names = list(shapes)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for file, part in halves.items():
        write_safetensors_bf16(folder / file, {n: shapes[n] for n in part})
        weight_map |= dict.fromkeys(part, file)
    total = sum(int(np.prod(s)) * 2 for s in shapes.values())
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return folder


GPTQ_GROUP = 32


def make_gptq_snapshot(tmp_path: Path) -> Path:
    """The tiny Llama as AutoGPTQ stores it: per linear qweight int32 [in/8, out], qzeros int32
    [in/g, out/8], scales fp16 [in/g, out], g_idx int32 [in]; embeddings, lm_head, norms fp16."""
    from safetensors.numpy import save_file

    folder = tmp_path / "tiny-llama-gptq"
    folder.mkdir()
    config = {**TINY_LLAMA, "torch_dtype": "float16",
              "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": GPTQ_GROUP,
                                      "desc_act": False, "sym": True}}
    (folder / "config.json").write_text(json.dumps(config))
    tensors: dict[str, np.ndarray] = {}
    for name, shape in tiny_llama_shapes().items():
        if len(shape) == 2 and name.startswith("model.layers."):
            out_f, in_f = shape
            base = name.removesuffix(".weight")
            tensors[base + ".qweight"] = np.zeros((in_f // 8, out_f), np.int32)
            tensors[base + ".qzeros"] = np.zeros((in_f // GPTQ_GROUP, out_f // 8), np.int32)
            tensors[base + ".scales"] = np.zeros((in_f // GPTQ_GROUP, out_f), np.float16)
            tensors[base + ".g_idx"] = np.zeros((in_f,), np.int32)
        else:
            tensors[name] = np.zeros(shape, np.float16)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def gguf_name(hf_name: str) -> str:
    """HF tensor name -> llama.cpp's (convert_hf_to_gguf.py tensor map for Llama)."""
    table = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf_name in table:
        return table[hf_name]
    layer = hf_name.split(".")[2]
    part = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
            "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    middle = ".".join(hf_name.split(".")[3:-1])
    return f"blk.{layer}.{part[middle]}.weight"


def write_gguf(path: Path, *, quantized: str | None = None, config: dict[str, Any] = TINY_LLAMA) -> None:
    """The tiny Llama as a GGUF (llama arch). All tensors F32, or 2-D layer matrices in `quantized`
    (a GGMLQuantizationType name such as Q8_0), quantized with gguf-py's own quantizer."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Tiny Llama")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if quantized is None
                         else getattr(gguf.LlamaFileType, f"MOSTLY_{quantized}"))
    rng = np.random.default_rng(0)
    for name, shape in tiny_llama_shapes(config).items():
        data = rng.standard_normal(shape).astype(np.float32)
        if quantized and len(shape) == 2 and name.startswith("model.layers."):
            qtype = getattr(gguf.GGMLQuantizationType, quantized)
            writer.add_tensor(gguf_name(name), gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name(name), data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_hf_cache(cache: Path, repo: str, *, with_weights: bool) -> Path:
    """A Hugging Face cache entry: models--org--name/{refs/main, snapshots/<rev>/...}."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    (snap / "config.json").write_text(json.dumps(TINY_LLAMA))
    if with_weights:
        write_safetensors_bf16(snap / "model.safetensors", tiny_llama_shapes())
    return snap
