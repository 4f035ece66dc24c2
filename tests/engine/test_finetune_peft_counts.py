"""Trainable counts as real PEFT builds them, on six architectures, for LoRA (q,v and all-linear), IA3, prompt
and prefix tuning.

Every expected figure is worked by hand from PEFT's own layer shapes (the source beside each rule):
- LoRA on an nn.Linear(in, out): lora_A Linear(in, r) + lora_B Linear(r, out) = r x (in + out), no bias
  (peft/tuners/lora/layer.py Linear.update_layer); on a 3-D expert parameter ParamWrapper uses
  Linear(in, r x E) + Linear(r x E, out) = r x E x (in + out).
- all-linear: every nn.Linear but lm_head (peft/tuners/tuners_utils.py _maybe_include_all_linear_layers).
- IA3: one vector per target nn.Linear, out x 1, or 1 x in for a feed-forward module (peft/tuners/ia3/layer.py);
  the modules are PEFT's defaults (peft/utils/constants.py TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING).
- prompt tuning: num_virtual_tokens x hidden_size (peft/tuners/prompt_tuning/model.py PromptEmbedding).
- prefix tuning: num_virtual_tokens x num_layers x 2 x token_dim, token_dim = head_dim x num_key_value_heads
  (peft/utils/other.py _prepare_prompt_learning_config; peft/tuners/prefix_tuning/model.py PrefixEncoder).
Published cross-checks: Llama-3-8B r=16 all-linear "trainable params: 41,943,040" and r=8 q,v "3,407,872"
(PEFT print_trainable_parameters, as widely reproduced); Llama-2-7B r=8 q,v 4,194,304 (test_finetune.py).
"""

from __future__ import annotations

import pytest

from llmfit.engine.finetune import FinetuneOptions, trainable_tensors
from llmfit.engine.peft_targets import prefix_token_dim
from llmfit.errors import SpecError
from llmfit.presets import Registry

QV = ("q", "v")
ALL = ("all-linear",)

# (model, options, expected trainable params, how)
CASES: list[tuple[str, dict[str, object], int]] = [
    # Llama-3.1-8B: h 4096, 32 layers, 8 KV heads x 128 (k, v 4096 -> 1024), MLP 14336.
    ("llama-3.1-8b", {"method": "lora", "lora_rank": 8, "lora_targets": QV}, 32 * 8 * ((4096 + 4096) + (4096 + 1024))),
    ("llama-3.1-8b", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 3 * (4096 + 14336))),  # = 41,943,040
    ("llama-3.1-8b", {"method": "ia3"}, 32 * (1024 + 1024 + 14336)),  # k, v outputs; down_proj input
    ("llama-3.1-8b", {"method": "prompt-tuning", "virtual_tokens": 20}, 20 * 4096),
    ("llama-3.1-8b", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 32 * 2 * (128 * 8)),
    # Qwen2.5-0.5B (tied lm_head, never a target): h 896, 24 layers, 14 heads x 64, 2 KV heads, MLP 4864.
    ("qwen2.5-0.5b", {"method": "lora", "lora_rank": 8, "lora_targets": QV}, 24 * 8 * ((896 + 896) + (896 + 128))),
    ("qwen2.5-0.5b", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     24 * 16 * ((896 + 896) * 2 + (896 + 128) * 2 + 3 * (896 + 4864))),
    ("qwen2.5-0.5b", {"method": "ia3"}, 24 * (896 + 128 + 4864)),  # PEFT's qwen2 entry: q_proj, v_proj, down_proj
    ("qwen2.5-0.5b", {"method": "prompt-tuning", "virtual_tokens": 20}, 20 * 896),
    ("qwen2.5-0.5b", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 24 * 2 * (64 * 2)),
    # Mixtral-8x7B: attention as Llama-3.1-8B; 8 experts of 14336; router 4096 -> 8.
    ("mixtral-8x7b-v0.1", {"method": "lora", "lora_rank": 8, "lora_targets": QV},
     32 * 8 * ((4096 + 4096) + (4096 + 1024))),
    # transformers 5: experts and router are nn.Parameters, so all-linear is attention only.
    ("mixtral-8x7b-v0.1", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)),
    # transformers 4: + router `gate` nn.Linear(4096, 8) + w1, w2, w3 of each of the 8 experts.
    ("mixtral-8x7b-v0.1", {"method": "lora", "lora_rank": 16, "lora_targets": ALL, "transformers": 4},
     32 * 16 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + (4096 + 8) + 8 * 3 * (4096 + 14336))),
    # QLoRA's seven targets at r=64 on transformers 4 names: w1/w3/w2 per expert.
    ("mixtral-8x7b-v0.1", {"method": "lora", "lora_rank": 64, "lora_targets": ("q", "k", "v", "o", "gate", "up",
                                                                               "down"), "transformers": 4},
     32 * 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 8 * 3 * (4096 + 14336))),
    # transformers 5, same roles: experts.gate_up_proj (8, 28672, 4096) and experts.down_proj (8, 4096, 14336)
    # through target_parameters: r x 8 x (4096 + 28672) + r x 8 x (14336 + 4096).
    ("mixtral-8x7b-v0.1", {"method": "lora", "lora_rank": 64, "lora_targets": ("q", "k", "v", "o", "gate", "up",
                                                                               "down")},
     32 * 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2 + 8 * (4096 + 28672) + 8 * (14336 + 4096))),
    ("mixtral-8x7b-v0.1", {"method": "ia3", "transformers": 4}, 32 * (1024 + 1024 + 8 * 14336)),  # k, v, w2 input
    ("mixtral-8x7b-v0.1", {"method": "ia3"}, 32 * (1024 + 1024)),  # transformers 5: w2 no longer exists
    ("mixtral-8x7b-v0.1", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 32 * 2 * (128 * 8)),
    # Qwen3-30B-A3B: h 2048, 48 layers, 32 heads x 128 (q 2048 -> 4096), 4 KV heads (512), 128 experts of 768.
    ("qwen3-30b-a3b", {"method": "lora", "lora_rank": 8, "lora_targets": QV}, 48 * 8 * ((2048 + 4096) + (2048 + 512))),
    ("qwen3-30b-a3b", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     48 * 16 * ((2048 + 4096) * 2 + (2048 + 512) * 2)),
    ("qwen3-30b-a3b", {"method": "lora", "lora_rank": 16, "lora_targets": ALL, "transformers": 4},
     48 * 16 * ((2048 + 4096) * 2 + (2048 + 512) * 2 + (2048 + 128) + 128 * 3 * (2048 + 768))),
    # No PEFT IA3 entry for qwen3_moe: q, v, down as qwen3; the experts' down_proj is a 3-D parameter (none).
    ("qwen3-30b-a3b", {"method": "ia3"}, 48 * (4096 + 512)),
    ("qwen3-30b-a3b", {"method": "ia3", "transformers": 4}, 48 * (4096 + 512 + 128 * 768)),
    ("qwen3-30b-a3b", {"method": "prompt-tuning", "virtual_tokens": 20}, 20 * 2048),
    ("qwen3-30b-a3b", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 48 * 2 * (128 * 4)),  # head_dim 128
    # Phi-3-mini: h 3072, 32 layers, 32 heads x 96, fused qkv_proj 3072 -> 9216, gate_up_proj 3072 -> 16384.
    ("phi-3-mini-4k-instruct", {"method": "lora", "lora_rank": 8, "lora_targets": ("qkv_proj",)},
     32 * 8 * (3072 + 9216)),
    ("phi-3-mini-4k-instruct", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     32 * 16 * ((3072 + 9216) + (3072 + 3072) + (3072 + 16384) + (8192 + 3072))),
    ("phi-3-mini-4k-instruct", {"method": "ia3"}, 32 * (9216 + 8192)),  # qkv_proj out, down_proj in
    ("phi-3-mini-4k-instruct", {"method": "prompt-tuning", "virtual_tokens": 20}, 20 * 3072),
    ("phi-3-mini-4k-instruct", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 32 * 2 * (96 * 32)),
    # Gemma-2-2B: h 2304, 26 layers, 8 heads x 256 (q 2304 -> 2048), 4 KV heads (1024), MLP 9216.
    ("gemma-2-2b", {"method": "lora", "lora_rank": 8, "lora_targets": QV}, 26 * 8 * ((2304 + 2048) + (2304 + 1024))),
    ("gemma-2-2b", {"method": "lora", "lora_rank": 16, "lora_targets": ALL},
     26 * 16 * ((2304 + 2048) * 2 + (2304 + 1024) * 2 + 3 * (2304 + 9216))),
    ("gemma-2-2b", {"method": "ia3"}, 26 * (2048 + 1024 + 9216)),  # PEFT's gemma2 entry: q, v, down
    ("gemma-2-2b", {"method": "prompt-tuning", "virtual_tokens": 20}, 20 * 2304),
    ("gemma-2-2b", {"method": "prefix-tuning", "virtual_tokens": 20}, 20 * 26 * 2 * (256 * 4)),  # not 2304/8 x 4
]


@pytest.mark.parametrize(("model", "options", "expected"), CASES,
                         ids=[f"{m}-{o['method']}-{o.get('lora_targets', '')}-{o.get('transformers', 5)}"
                              for m, o, _ in CASES])
def test_trainable_count_equals_peft(registry: Registry, model: str, options: dict[str, object],
                                     expected: int) -> None:
    tensors, _, _ = trainable_tensors(registry.model(model), FinetuneOptions(**options))  # type: ignore[arg-type]
    assert sum(t.params for t in tensors) == expected


def test_published_llama3_8b_figures(registry: Registry) -> None:
    spec = registry.model("llama-3.1-8b")
    all_linear, _, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_rank=16, lora_targets=ALL))
    qv, _, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_rank=8, lora_targets=QV))
    assert sum(t.params for t in all_linear) == 41_943_040
    assert sum(t.params for t in qv) == 3_407_872


def test_phi3_q_v_refused_as_peft_refuses(registry: Registry) -> None:
    # Phi-3 has no q_proj / v_proj: PEFT raises "Target modules {'q_proj', 'v_proj'} not found in the base model".
    with pytest.raises(SpecError, match="qkv_proj"):
        trainable_tensors(registry.model("phi-3-mini-4k-instruct"),
                          FinetuneOptions(method="lora", lora_targets=QV))
    with pytest.raises(SpecError, match=r"q_proj.*not in"):
        trainable_tensors(registry.model("phi-3-mini-4k-instruct"),
                          FinetuneOptions(method="lora", lora_targets=("q_proj", "v_proj")))


def test_phi3_default_is_the_fused_module(registry: Registry) -> None:
    # PEFT has no phi3 default; llmfit plans the module that holds q and v and says so.
    _, modules, notes = trainable_tensors(registry.model("phi-3-mini-4k-instruct"), FinetuneOptions(method="lora"))
    assert modules == ["qkv_proj"] and any("no default target_modules" in n for n in notes)


def test_mixtral_names(registry: Registry) -> None:
    spec = registry.model("mixtral-8x7b-v0.1")
    _, modules, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_targets=("gate", "up", "down"),
                                                            transformers=4))
    assert set(modules) == {"w1", "w2", "w3"}
    # The router: role `router`, PEFT module name `gate` (transformers 4: an nn.Linear(4096, 8)).
    tensors, modules, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_rank=8,
                                                                  lora_targets=("router",), transformers=4))
    assert modules == ["gate"] and sum(t.params for t in tensors) == 32 * 8 * (4096 + 8)
    # gate_proj is no Mixtral module: exit 2, naming what exists.
    with pytest.raises(SpecError, match=r"gate_proj.*w1"):
        trainable_tensors(spec, FinetuneOptions(method="lora", lora_targets=("gate_proj",), transformers=4))
    # transformers 5 fuses gate and up: one alone cannot be wrapped.
    with pytest.raises(SpecError, match="gate_up_proj"):
        trainable_tensors(spec, FinetuneOptions(method="lora", lora_targets=("gate",)))


def test_qlora_cannot_target_3d_parameters(registry: Registry) -> None:
    with pytest.raises(SpecError, match="bitsandbytes"):
        trainable_tensors(registry.model("qwen3-30b-a3b"), FinetuneOptions(method="qlora", lora_targets=("down",)))


def test_deepseek_mla_projections(registry: Registry) -> None:
    spec = registry.model("deepseek-v3")
    _, modules, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_targets=("q", "k", "v", "o")))
    assert modules == ["q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"]
    rank = 8
    tensors, _, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_rank=rank,
                                                            lora_targets=("q_a_proj", "kv_b_proj")))
    # q_a_proj 7168 -> 1536; kv_b_proj 512 -> 128 x (128 + 128); 61 layers.
    assert sum(t.params for t in tensors) == 61 * rank * ((7168 + 1536) + (512 + 128 * 256))


def test_prefix_token_dim_uses_config_head_dim(registry: Registry) -> None:
    assert prefix_token_dim(registry.model("gemma-2-2b")) == 256 * 4
    assert prefix_token_dim(registry.model("qwen3-30b-a3b")) == 128 * 4
