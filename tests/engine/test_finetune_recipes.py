"""Trainer recipes (configs/recipes/*.yaml) and the memory rules they switch on, each hand-checked.

Sources beside each figure: DeepSpeed's estimators (deepspeed/runtime/zero/stage_1_and_2.py
estimate_zero2_model_states_mem_needs, stage3.py estimate_zero3_model_states_mem_needs @edaa7221), the QLoRA
paper (arXiv:2305.14314, abstract: 65B on a single 48 GB GPU) with its repository's recipe (artidoro/qlora), the
field guide's 7B-on-24 GB question, torchtune's configs.
"""

from __future__ import annotations

import pytest

from llmfit.engine.finetune import FinetuneOptions, finetune
from llmfit.engine.recipes import PLAIN, LossModel, Recipe
from llmfit.engine.records import replace
from llmfit.errors import SpecError
from llmfit.presets import Registry
from llmfit.specs import ModelSpec
from llmfit.training_recipes import get_recipe, load_recipes

GIB = 2**30
GB = 10**9
P = 2_851_000_000  # t5-3b, "SW: Model with 2851M total params" (DeepSpeed docs memory.rst)

BEHAVIOUR = ("full", "peft", "qlora", "loss", "multi_gpu_zero", "deepspeed_fp32_grad_partition", "sharding_unit",
             "peak_figure")


def test_every_recipe_loads_and_cites_its_sources() -> None:
    recipes = load_recipes()
    assert set(recipes) == {"hf", "trl", "torchtune", "unsloth", "axolotl", "deepspeed", "qlora-paper"}
    for recipe in recipes.values():
        assert recipe.sources and recipe.source
        changed = [key for key in ("full", "peft", "qlora") if getattr(recipe, key) != getattr(PLAIN, key)]
        for family in changed:  # a setting that departs from the plain defaults names where it comes from
            assert any(k.startswith(f"{family}.") for k in recipe.sources), (recipe.name, family)


def test_plain_defaults_are_the_hf_recipe() -> None:
    hf = get_recipe("hf")
    for key in BEHAVIOUR:
        assert getattr(hf, key) == getattr(PLAIN, key) or key == "loss", key
    assert replace(hf.loss, name="") == replace(PLAIN.loss, name="")


def test_unknown_recipe_is_bad_input() -> None:
    with pytest.raises(SpecError, match="allowed: "):
        get_recipe("megatron")


def test_recipe_fills_only_what_is_not_given() -> None:
    tt = get_recipe("torchtune")
    options = FinetuneOptions(method="full", recipe=tt)
    assert options.optimizer == "paged-adamw-8bit" and options.optimizer_in_backward and options.grad_checkpointing
    assert options.precision == "bf16" and "optimizer_in_backward" in options.recipe_defaults
    explicit = FinetuneOptions(method="full", recipe=tt, optimizer="adamw", grad_checkpointing=False)
    assert explicit.optimizer == "adamw" and not explicit.grad_checkpointing
    # optimizer_in_bwd "Requires gradient_accumulation_steps=1": with accumulation the recipe's default is off.
    assert not FinetuneOptions(method="full", recipe=tt, grad_accum=4).optimizer_in_backward
    # Several GPUs: torchtune's distributed recipes shard with FSDP (ZeRO-3-like); hf runs DDP.
    assert FinetuneOptions(method="lora", recipe=tt, gpus=8).zero == 3
    assert FinetuneOptions(method="lora", gpus=8).zero == 0


def test_qlora_defaults_to_gradient_checkpointing_and_says_so(registry: Registry) -> None:
    r = finetune(registry.model("7b"), registry.gpu("rtx-4090"), FinetuneOptions(method="qlora"))
    assert r.grad_checkpointing and any("gradient checkpointing on" in n for n in r.notes)
    assert not FinetuneOptions(method="lora").grad_checkpointing  # TrainingArguments default


def test_field_guide_7b_on_24gb_seq_2048_batch_4_qlora_fits(registry: Registry) -> None:
    # "7B on a 24 GB card, seq 2048, batch 4" (guide 5.4 / 6.4 C): fits with QLoRA's own recipe.
    r = finetune(registry.model("7b"), registry.gpu("rtx-4090"), FinetuneOptions(method="qlora", seq_tokens=2048,
                                                                                micro_batch=4))
    assert r.fits and r.total_bytes_per_gpu < 20 * GIB


def _llama_65b() -> ModelSpec:
    # huggyllama/llama-65b config.json: the QLoRA paper's 65B model.
    return ModelSpec(name="llama-65b", source="huggyllama/llama-65b config.json", architecture="LlamaForCausalLM",
                     hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, intermediate_size=22016,
                     vocab_size=32000, max_position_embeddings=2048)


def test_qlora_paper_65b_fits_one_48gb_gpu_with_its_recipe(registry: Registry) -> None:
    # scripts/finetune_guanaco_65b.sh: r=64 on every linear layer, source 16 + target 512 tokens, batch 1,
    # paged_adamw_32bit, gradient checkpointing, adapters in bf16 (qlora.py: LoraLayer .to(torch.bfloat16)).
    gpu = registry.gpu("rtx-a6000")  # 48 GB
    options = {"method": "qlora", "lora_rank": 64, "lora_targets": ("all-linear",), "seq_tokens": 528}
    paper = finetune(_llama_65b(), gpu, FinetuneOptions(recipe=get_recipe("qlora-paper"), **options))
    assert paper.fits and paper.adapter_dtype == "bf16" and paper.paged_optimizer_bytes_per_gpu > 0
    # The paged fp32 states (2 x 4 B per trainable parameter) live in unified memory, not counted on the GPU.
    assert paper.paged_optimizer_bytes_per_gpu == paper.trainable_params * 8
    # With fp32 adapters and the optimizer states on the GPU (plain HF defaults) it would not fit.
    plain = finetune(_llama_65b(), gpu, FinetuneOptions(**options))
    assert not plain.fits


def test_reserved_holds_fragmentation_and_the_load_peak(registry: Registry) -> None:
    r = finetune(registry.model("llama-3.1-8b"), registry.gpu("rtx-4090"), FinetuneOptions(method="qlora"))
    assert r.peak_reserved_bytes_per_gpu > r.peak_allocated_bytes_per_gpu
    # Load: the 4-bit base + the largest bf16 matrix being quantized (14336 x 4096 x 2 B) stays reserved.
    assert r.peak_reserved_bytes_per_gpu >= r.weights_bytes_per_gpu + 14336 * 4096 * 2
    assert r.total_bytes_per_gpu == r.peak_reserved_bytes_per_gpu + 512 * 2**20  # + the CUDA context
    assert r.trainer_peak_figure == "allocated" and r.trainer_peak_bytes_per_gpu == r.peak_allocated_bytes_per_gpu
    unsloth = finetune(registry.model("llama-3.1-8b"), None, FinetuneOptions(method="qlora",
                                                                          recipe=get_recipe("unsloth")))
    assert unsloth.trainer_peak_bytes_per_gpu == unsloth.peak_reserved_bytes_per_gpu  # "Peak reserved memory"


# --- DeepSpeed ZeRO as its current estimators compute it ------------------------------------------------


def _ds(**options: object) -> int:
    r = finetune(None, None, FinetuneOptions(method="full", recipe=get_recipe("deepspeed"), **options),  # type: ignore[arg-type]
                 params=P)
    return r.model_states_bytes_per_gpu


def test_deepspeed_zero2_estimator() -> None:
    # stage_1_and_2.py: gpu_mem = 2 * total_params + int(18 * total_params / total_gpus).
    assert _ds(gpus=8, zero=2) == 2 * P + 18 * P // 8
    # offload_optimizer=cpu: gpu_mem = 2 * total_params (5.31 GiB in memory.rst).
    assert _ds(gpus=8, zero=2, cpu_offload="optimizer") == 2 * P
    assert round(2 * P / GIB, 2) == 5.31


def test_deepspeed_zero3_estimator_without_the_largest_layer() -> None:
    # stage3.py: no offload largest_layer_memory + 18 * params / total_gpus; optimizer offload + 2 * params /
    # total_gpus; param + optimizer offload: largest_layer_memory only (a bare count has no layer shapes).
    assert _ds(gpus=8, zero=3) == pytest.approx(18 * P / 8, abs=8)
    assert _ds(gpus=8, zero=3, cpu_offload="optimizer") == pytest.approx(2 * P / 8, abs=8)
    assert _ds(gpus=8, zero=3, cpu_offload="params") == 0


def test_zero_paper_figures_stay_exact_with_the_plain_recipe() -> None:
    psi, nd = 7_500_000_000, 64
    for stage, value in {0: 16 * psi, 1: 4 * psi + 12 * psi / nd, 2: 2 * psi + 14 * psi / nd,
                         3: 16 * psi / nd}.items():
        r = finetune(None, None, FinetuneOptions(method="full", gpus=nd, zero=stage), params=psi)
        assert r.model_states_bytes_per_gpu == pytest.approx(value, abs=4)


def test_params_offload_needs_sharding() -> None:
    with pytest.raises(SpecError, match="--zero 3"):
        finetune(None, None, FinetuneOptions(method="full", cpu_offload="params", zero=2, gpus=2), params=P)


# --- loss, optimizer in backward, offloading ------------------------------------------------------------


def test_loss_models() -> None:
    tokens, vocab = 4096, 128_256
    # HF: bf16 logits (2) + fp32 log-softmax (4) saved, fp32 upcast and gradients (6) at once.
    assert PLAIN.loss.bytes(tokens, vocab) == tokens * vocab * 12
    # torchtune LinearCrossEntropyLoss, 8 chunks: 4 B saved per logit, 10 B for one chunk of 512 tokens.
    tt = get_recipe("torchtune").loss
    assert tt.bytes(tokens, vocab) == tokens * vocab * 4 + 512 * vocab * 10
    # TRL chunked_nll: checkpointed chunks of 256 tokens, nothing saved per token.
    assert get_recipe("trl").loss.bytes(tokens, vocab) == 256 * vocab * 12
    assert LossModel(chunk_tokens=256).chunk(100) == 100
    assert tt.compiled().saved_bytes_per_logit == 0 and PLAIN.loss.compiled().saved_bytes_per_logit == 2


def test_optimizer_in_backward_keeps_one_gradient(registry: Registry) -> None:
    spec = registry.model("llama-3.2-3b")
    tt = get_recipe("torchtune")
    fused = finetune(spec, None, FinetuneOptions(method="full", recipe=tt, grad_accum=1))
    plain = finetune(spec, None, FinetuneOptions(method="full", recipe=tt, grad_accum=1, optimizer_in_backward=False))
    largest = 128_256 * 3072  # the tied embedding
    assert fused.gradients_bytes_per_gpu == largest * 2
    assert plain.gradients_bytes_per_gpu == spec.published_params * 2
    with pytest.raises(SpecError, match="grad-accum 1"):
        finetune(spec, None, FinetuneOptions(method="full", recipe=tt, grad_accum=2, optimizer_in_backward=True))


def test_activation_offload_keeps_two_layers(registry: Registry) -> None:
    spec = registry.model("llama-3.1-8b")
    on = finetune(spec, None, FinetuneOptions(method="lora", grad_checkpointing=True, activation_offload=True))
    off = finetune(spec, None, FinetuneOptions(method="lora", grad_checkpointing=True))
    # Checkpoints: 2 layer inputs instead of 32 (2048 tokens x 4096 x 2 B each).
    assert off.activations_bytes_per_gpu - on.activations_bytes_per_gpu == 30 * 2048 * 4096 * 2


def test_paged_and_bf16_adapters(registry: Registry) -> None:
    spec = registry.model("7b")
    r = finetune(spec, None, FinetuneOptions(method="qlora", optimizer="paged-adamw-32bit", adapter_dtype="bf16"))
    assert r.trainable_weights_bytes == r.trainable_params * 2 and r.optimizer_bytes_per_gpu == 0
    assert r.paged_optimizer_bytes_per_gpu == r.trainable_params * 8  # bitsandbytes 32-bit: fp32 states


def test_recipe_is_a_type_with_validation() -> None:
    with pytest.raises(ValueError, match="sources"):
        Recipe(name="custom")
