"""Engine tests for fine-tuning memory: PEFT counts, ZeRO model states, the activation inventory.

Hand-checked sources: LoRA counts from Hu et al. 2021 (r x (in + out) per matrix) and the field guide 5.2;
PEFT's print_trainable_parameters for Llama-2-7B r=8 on q_proj, v_proj (4,194,304); the ZeRO paper's
figure 1; Korthikanti et al. 2022 eq. (1).
"""

from __future__ import annotations

import pytest

from llmfit.engine.finetune import (
    KORTHIKANTI_CONVENTIONS,
    METHODS,
    FinetuneOptions,
    activation_items,
    finetune,
    korthikanti_layer_bytes,
    lora_params,
    search_max,
    trainable_tensors,
    training_settings,
)
from llmfit.errors import SpecError
from llmfit.presets import Registry
from llmfit.specs import ModelSpec


def _trainable(spec: ModelSpec, **options: object) -> int:
    tensors, _, _ = trainable_tensors(spec, FinetuneOptions(**options))  # type: ignore[arg-type]
    return sum(t.params for t in tensors)


def test_lora_one_square_matrix_guide_5_2() -> None:
    # Field guide 5.2: 4096 x 16 + 16 x 4096 = 131,072 = 0.78 % of 16,777,216; r = 32 doubles it.
    assert lora_params(4096, 4096, 16) == 131_072
    assert round(100 * lora_params(4096, 4096, 16) / (4096 * 4096), 2) == 0.78
    assert lora_params(4096, 4096, 32) == 262_144


def test_lora_llama2_7b_r8_qv_as_peft_prints(registry: Registry) -> None:
    # PEFT docs / print_trainable_parameters: "trainable params: 4,194,304" for Llama-2-7B, r=8, q_proj+v_proj.
    assert _trainable(registry.model("7b"), method="lora", lora_rank=8, lora_targets=("q", "v")) == 4_194_304
    # Same with the module names.
    assert _trainable(registry.model("7b"), method="lora", lora_rank=8, lora_targets=("q_proj", "v_proj")) == 4_194_304


def test_lora_gqa_uses_the_real_kv_width(registry: Registry) -> None:
    # Llama-3.1-8B: k_proj and v_proj are 4096 -> 1024 (8 KV heads x 128); 32 layers.
    spec = registry.model("llama-3.1-8b")
    per_layer = 16 * (4096 + 1024)
    assert _trainable(spec, method="lora", lora_rank=16, lora_targets=("k",)) == 32 * per_layer


def test_all_linear_llama2_7b(registry: Registry) -> None:
    # 7 matrices per layer: q,k,v,o 4096x4096, gate/up 11008x4096, down 4096x11008.
    per_layer = 4 * 8 * (4096 + 4096) + 3 * 8 * (4096 + 11008)
    assert _trainable(registry.model("7b"), method="lora", lora_rank=8, lora_targets=("all-linear",)) == 32 * per_layer


def test_moe_experts_counted_once_per_expert(registry: Registry) -> None:
    # Mixtral-8x7B: 8 experts per layer, each with its own down projection (14336 -> 4096).
    spec = registry.model("mixtral-8x7b-v0.1")
    assert _trainable(spec, method="lora", lora_rank=8, lora_targets=("down",)) == 32 * 8 * 8 * (14336 + 4096)


def test_falcon_fused_qkv_answers_for_q_and_v(registry: Registry) -> None:
    spec = registry.model("falcon-7b")
    tensors, modules, _ = trainable_tensors(spec, FinetuneOptions(method="lora", lora_rank=8))
    assert modules == ["query_key_value"]
    fused_rows = (spec.num_attention_heads + 2 * spec.kv_heads) * spec.real_head_dim
    assert sum(t.params for t in tensors) == spec.num_hidden_layers * 8 * (spec.hidden_size + fused_rows)


def test_unknown_lora_target_is_bad_input(registry: Registry) -> None:
    with pytest.raises(SpecError):
        _trainable(registry.model("7b"), method="lora", lora_targets=("nonexistent",))


def test_ia3_prompt_prefix_adapter_counts(registry: Registry) -> None:
    spec = registry.model("7b")
    # IA3: k and v output vectors (4096 each) + down_proj input vector (11008), 32 layers.
    assert _trainable(spec, method="ia3") == 32 * (4096 + 4096 + 11008)
    # Prompt tuning: virtual tokens x hidden.
    assert _trainable(spec, method="prompt-tuning", virtual_tokens=20) == 20 * 4096
    # Prefix tuning: virtual tokens x layers x 2 x kv width.
    assert _trainable(spec, method="prefix-tuning", virtual_tokens=20) == 20 * 32 * 2 * 4096
    # AdapterHub SeqBn, reduction 16: down 4096->256 + bias, up 256->4096 + bias, one per layer.
    assert _trainable(spec, method="adapter") == 32 * (2 * 4096 * 256 + 256 + 4096)
    assert _trainable(spec, method="adapter", adapter_config="double_seq_bn") == 64 * (2 * 4096 * 256 + 256 + 4096)


def test_prefix_tuning_minds_gqa(registry: Registry) -> None:
    # Llama-3.1-8B: 8 KV heads of 128 -> 1024 values per K (not 4096).
    assert _trainable(registry.model("llama-3.1-8b"), method="prefix-tuning", virtual_tokens=10) == 10 * 32 * 2 * 1024


def test_full_trains_every_parameter(registry: Registry) -> None:
    spec = registry.model("7b")
    assert _trainable(spec, method="full") == spec.published_params


def _gpt_spec(h: int = 1024, a: int = 16) -> ModelSpec:
    return ModelSpec(name="gpt", source="test", hidden_size=h, num_hidden_layers=1, num_attention_heads=a,
                     intermediate_size=4 * h, vocab_size=50257, max_position_embeddings=2048, mlp_kind="plain",
                     norm_kind="layernorm")


@pytest.mark.parametrize("s", [512, 2048])
def test_korthikanti_eq1_reproduced_under_its_assumptions(s: int) -> None:
    # GPT layer, 16-bit activations, dropout, LayerNorm, 4h MLP, eager attention: sbh(34 + 5as/h).
    spec = _gpt_spec()
    items = activation_items(spec, FinetuneOptions(method="full", attention="eager"),
                             conventions=KORTHIKANTI_CONVENTIONS)
    b = 2
    total = sum(i.bytes_per_token * b * s * (s if i.per_token_pair else 1) for i in items)
    assert total == korthikanti_layer_bytes(s, b, 1024, 16)
    assert korthikanti_layer_bytes(s, b, 1024, 16) == s * b * 1024 * (34 + 5 * 16 * s // 1024)


def test_sdpa_drops_the_quadratic_term(registry: Registry) -> None:
    spec = registry.model("7b")
    sdpa = activation_items(spec, FinetuneOptions(method="full", attention="sdpa"))
    eager = activation_items(spec, FinetuneOptions(method="full", attention="eager"))
    assert not any(i.per_token_pair for i in sdpa)
    assert sum(i.bytes_per_token for i in eager if i.per_token_pair) == 32 * 6  # heads x (fp32 softmax + bf16)


def test_frozen_linears_do_not_save_inputs_but_qlora_does(registry: Registry) -> None:
    spec = registry.model("7b")

    def per_token(method: str) -> int:
        return sum(i.bytes_per_token for i in activation_items(spec, FinetuneOptions(method=method),
                                                               lora_modules=["q_proj", "v_proj"]))

    # QLoRA's MatMul4Bit keeps the inputs of o_proj (4096), gate/up (4096) and down (11008) in bf16.
    assert per_token("qlora") - per_token("lora") == 2 * (4096 + 4096 + 11008)


def test_gqa_shrinks_k_and_v(registry: Registry) -> None:
    items = activation_items(registry.model("llama-3.1-8b"), FinetuneOptions(method="full"))
    kv = next(i for i in items if i.per_kv)
    assert kv.bytes_per_token == 2 * 2 * 8 * 128


def test_zero_paper_figure1_engine() -> None:
    psi, nd = 7_500_000_000, 64
    expected = {0: 16 * psi, 1: 4 * psi + 12 * psi / nd, 2: 2 * psi + 14 * psi / nd, 3: 16 * psi / nd}
    for stage, value in expected.items():
        r = finetune(None, None, FinetuneOptions(method="full", gpus=nd, zero=stage), params=psi)
        assert r.model_states_bytes_per_gpu == pytest.approx(value, abs=4)
        assert r.activations_bytes_per_gpu == 0 and r.fits is None


def test_params_mode_refuses_peft_methods() -> None:
    with pytest.raises(SpecError, match="architecture"):
        finetune(None, None, FinetuneOptions(method="lora"), params=7_000_000_000)


def test_largest_batch_and_sequence_are_boundaries(registry: Registry) -> None:
    spec, gpu = registry.model("7b"), registry.gpu("a100-80")
    r = finetune(spec, gpu, FinetuneOptions(method="qlora", seq_tokens=1024))
    assert r.limits is not None and r.limits.max_micro_batch and r.limits.max_seq_tokens
    at = finetune(spec, gpu, FinetuneOptions(method="qlora", seq_tokens=1024, micro_batch=r.limits.max_micro_batch))
    over = finetune(spec, gpu, FinetuneOptions(method="qlora", seq_tokens=1024,
                                               micro_batch=r.limits.max_micro_batch + 1))
    assert at.fits and not over.fits
    s = r.limits.max_seq_tokens
    assert finetune(spec, gpu, FinetuneOptions(method="qlora", seq_tokens=s)).fits
    assert not finetune(spec, gpu, FinetuneOptions(method="qlora", seq_tokens=s + 1)).fits


def test_search_max_finds_the_boundary() -> None:
    for boundary in (0, 1, 2, 7, 1000, 65_537):
        found, _ = search_max(lambda n, b=boundary: n <= b, 1, 1 << 20)
        assert found == boundary


def test_checkpointing_and_eight_bit_optimizer_reduce_memory(registry: Registry) -> None:
    spec, gpu = registry.model("7b"), registry.gpu("h100-80")
    base = finetune(spec, gpu, FinetuneOptions(method="full", seq_tokens=4096))
    ckpt = finetune(spec, gpu, FinetuneOptions(method="full", seq_tokens=4096, grad_checkpointing=True))
    assert ckpt.activations_bytes_per_gpu < base.activations_bytes_per_gpu / 5
    adam8 = finetune(spec, gpu, FinetuneOptions(method="full", optimizer="adamw-8bit"))
    # bitsandbytes: 2 states x (1 B + 4 B per 256) per parameter (small tensors keep 32-bit states).
    assert adam8.optimizer_bytes_per_gpu < base.optimizer_bytes_per_gpu / 3.5


def test_full_mixed_precision_is_16_bytes_per_param(registry: Registry) -> None:
    spec = registry.model("7b")
    r = finetune(spec, None, FinetuneOptions(method="full"))
    assert r.model_states_bytes_per_gpu == 16 * spec.published_params


def test_training_time_full_is_six_n_per_token(registry: Registry) -> None:
    r = finetune(None, registry.gpu("h100-80"), FinetuneOptions(method="full", dataset_tokens=10**9),
                 params=7_000_000_000)
    assert r.training is not None
    assert r.training.flops_per_token == 6 * 7_000_000_000
    assert r.training.steps_per_epoch == -(-10**9 // 2048)


def test_every_method_on_every_preset(registry: Registry) -> None:
    gpu = registry.gpu("h100-80")
    for name in registry.model_names():
        spec = registry.model(name)
        for method in METHODS:
            for gpus, zero in ((1, 0), (8, 3)):
                r = finetune(spec, gpu, FinetuneOptions(method=method, gpus=gpus, zero=zero, seq_tokens=512))
                assert 0 < r.trainable_params <= r.all_params
                assert r.total_bytes_per_gpu > r.weights_bytes_per_gpu >= 0
                assert r.total_bytes == r.total_bytes_per_gpu * gpus


def test_emit_seam_for_qlora(registry: Registry) -> None:
    r = finetune(registry.model("7b"), None, FinetuneOptions(method="qlora", lora_rank=8, gpus=2, zero=2))
    settings = training_settings(r)
    assert settings["lora"]["r"] == 8 and settings["lora"]["target_modules"] == ["q_proj", "v_proj"]  # type: ignore[index]
    assert settings["bnb"]["bnb_4bit_quant_type"] == "nf4"  # type: ignore[index]
    assert settings["zero"]["stage"] == 2  # type: ignore[index]
