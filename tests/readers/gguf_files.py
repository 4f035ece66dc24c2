"""GGUF files written with gguf-py's own GGUFWriter: a real-sized vocabulary, many tensors, and bytes
kept small - tiny tensors, or real shapes whose data is a sparse hole (truncate), which the readers never
touch. Used by the reader tests and by benchmarks/model_files.py."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _vocab(size: int) -> list[str]:
    # Byte-level BPE style tokens of 1-12 characters, like a Qwen/Llama-3 vocabulary.
    return [f"tok{i}" + "\u0120" * (i % 5) for i in range(size)]


def write_qwen2_gguf(path: Path, *, layers: int = 64, vocab: int = 152064, hidden: int = 5120,
                     heads: int = 40, kv_heads: int = 8, ffn: int = 27648, extra_tensors: int = 0,
                     tiny: bool = False, merges: bool = True, token_types: bool = True) -> Path:
    """A Qwen2.5-32B-shaped GGUF (64 layers x 11 tensors + 3 = 707 tensors) with the full tokenizer arrays
    (tokens, token types, merges). `tiny`: every tensor is 32 elements (shapes do not follow the model);
    otherwise real shapes, F16 data left as a sparse hole. `extra_tensors` adds small 1-D tensors (to reach
    10k tensors)."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("Synthetic Qwen2.5")
    writer.add_block_count(layers)
    writer.add_context_length(32768)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(1e6)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    tokens = _vocab(vocab)
    writer.add_token_list(tokens)
    if token_types:
        writer.add_token_types([1] * vocab)
    if merges:
        writer.add_token_merges([f"{tokens[i]} {tokens[i + 1]}" for i in range(vocab - 1000)])
    writer.add_bos_token_id(151643)
    writer.add_chat_template("{% for message in messages %}{{ message['content'] }}{% endfor %}")
    head_dim = hidden // heads
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,),
                                          "output.weight": (vocab, hidden)}
    for i in range(layers):
        shapes |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,),
                   f"blk.{i}.attn_q.weight": (heads * head_dim, hidden), f"blk.{i}.attn_q.bias": (heads * head_dim,),
                   f"blk.{i}.attn_k.weight": (kv_heads * head_dim, hidden),
                   f"blk.{i}.attn_k.bias": (kv_heads * head_dim,),
                   f"blk.{i}.attn_v.weight": (kv_heads * head_dim, hidden),
                   f"blk.{i}.attn_v.bias": (kv_heads * head_dim,),
                   f"blk.{i}.attn_output.weight": (hidden, heads * head_dim),
                   f"blk.{i}.ffn_gate.weight": (ffn, hidden), f"blk.{i}.ffn_up.weight": (ffn, hidden),
                   f"blk.{i}.ffn_down.weight": (hidden, ffn)}
    for i in range(extra_tensors):
        shapes[f"extra.{i}.weight"] = (32,)
    if tiny:
        for name in shapes:
            writer.add_tensor(name, np.full((32,), 0.5, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path
    write_sparse_tensors(writer, path, {name: (shape, np.dtype(np.float32 if len(shape) == 1 else np.float16))
                                        for name, shape in shapes.items()})
    return path


def ggml_pad(n: int, align: int = 32) -> int:  # ggml's GGML_PAD
    return n + (align - n % align) % align


def write_sparse_tensors(writer: Any, path: Path, tensors: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
    """Finish a gguf.GGUFWriter whose metadata is added: tensor infos of `tensors` {name: (numpy-order shape,
    dtype)} (GGUFWriter stores them reversed, ne0 first), header, metadata and tensor infos written, and the
    tensor data - each tensor padded to 32 bytes, as GGUFWriter lays it out - left as a sparse hole."""
    sizes = {name: int(np.prod(shape)) * dtype.itemsize for name, (shape, dtype) in tensors.items()}
    for name, (shape, dtype) in tensors.items():
        writer.add_tensor_info(name, shape, dtype, sizes[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    assert writer.fout is not None
    handle = writer.fout[0]
    start = handle.tell()
    handle.flush()
    writer.close()
    with open(path, "r+b") as out:
        out.truncate(ggml_pad(start) + sum(ggml_pad(n) for n in sizes.values()))


def write_small_gguf(path: Path, metadata: dict[str, tuple[Any, Any]], tensors: dict[str, Any],
                     arch: str = "llama") -> Path:
    """A GGUF of the given metadata {key: (value, GGUFValueType)} and tensors {name: ndarray}."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    for key, (value, vtype) in metadata.items():
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_array(key, value)
        else:
            writer.add_key_value(key, value, vtype)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
