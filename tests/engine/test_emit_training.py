"""finetune --emit (engine): the DeepSpeed JSON, PEFT and bitsandbytes arguments, parsed back from the emitted
text and held to the finetune plan they come from."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from llmfit.engine.emit import deepspeed_config, emit_training
from llmfit.engine.finetune import FinetuneOptions, FinetuneResult, finetune
from llmfit.errors import SpecError
from llmfit.presets import Registry


def parse_call(text: str) -> tuple[str, str, dict[str, Any]]:
    """`from lib import Class` + `var = Class(k=v, ...)` -> (lib, Class, kwargs), every value a literal."""
    tree = ast.parse(text)
    imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    calls = [node.value for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)]
    assert len(imports) == 1 and len(calls) == 1
    call = calls[0]
    assert isinstance(call.func, ast.Name) and call.func.id == imports[0].names[0].name and not call.args
    return imports[0].module or "", call.func.id, {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords
                                                    if kw.arg is not None}


def plan(registry: Registry, model: str = "llama-3.1-8b", **options: Any) -> FinetuneResult:
    return finetune(registry.model(model), None, FinetuneOptions(**options))


@pytest.mark.parametrize(("stage", "gpus", "micro", "accum"), [(0, 1, 1, 1), (1, 2, 4, 8), (2, 8, 2, 16), (3, 4, 3, 5)])
def test_deepspeed_json_follows_the_plan(registry: Registry, stage: int, gpus: int, micro: int, accum: int) -> None:
    r = plan(registry, method="full", zero=stage, gpus=gpus, micro_batch=micro, grad_accum=accum, seq_tokens=256)
    emitted = emit_training("deepspeed", r)
    config = json.loads(emitted.text)
    assert config == emitted.config
    assert config["zero_optimization"]["stage"] == r.zero == stage
    assert config["train_micro_batch_size_per_gpu"] == r.micro_batch
    assert config["gradient_accumulation_steps"] == r.grad_accum
    # DeepSpeed's start-up check: train_batch_size == micro x accumulation x world size.
    assert config["train_batch_size"] == r.micro_batch * r.grad_accum * r.gpu_count
    assert config["bf16"] == {"enabled": True} and config["fp16"] == {"enabled": False}
    assert config["optimizer"]["type"] == "AdamW" and config["optimizer"]["params"]["betas"] == [0.9, 0.999]
    assert config["gradient_clipping"] > 0
    has_stage3_knobs = "stage3_gather_16bit_weights_on_model_save" in config["zero_optimization"]
    assert has_stage3_knobs == (stage == 3)
    if stage == 3:
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_deepspeed_buckets_are_the_ones_the_plan_counts(registry: Registry) -> None:
    # The plan's ZeRO-3 line: 4 B x largest layer + min(5e7, params) x 2 B prefetch (DeepSpeed's default).
    r = plan(registry, method="full", zero=3, gpus=8, seq_tokens=256)
    zero = deepspeed_config(r).config["zero_optimization"]
    gathered = next(line for line in r.lines if line.name.startswith("ZeRO-3"))
    assert f"min({zero['stage3_prefetch_bucket_size']:.0e}".replace("+0", "") in gathered.formula
    assert zero["overlap_comm"] is False  # overlapping keeps extra buckets the plan does not count


def test_fp32_plan_disables_both_half_precisions(registry: Registry) -> None:
    config = emit_training("deepspeed", plan(registry, method="lora", precision="fp32", seq_tokens=128)).config
    assert config["bf16"] == {"enabled": False} and config["fp16"] == {"enabled": False}


@pytest.mark.parametrize("optimizer", ["adamw-8bit", "paged-adamw-8bit", "sgd", "adafactor"])
def test_client_optimizers_are_not_in_the_json(registry: Registry, optimizer: str) -> None:
    emitted = emit_training("deepspeed", plan(registry, method="full", optimizer=optimizer, zero=2, gpus=2,
                                              seq_tokens=128))
    assert "optimizer" not in emitted.config
    assert emitted.config["zero_allow_untested_optimizer"] is True
    assert any("deepspeed.initialize" in note for note in emitted.notes)
    if "8bit" in optimizer:
        assert any("bitsandbytes, not DeepSpeed" in note for note in emitted.notes)


@pytest.mark.parametrize(("model", "targets", "rank"), [
    ("llama-3.1-8b", ("q", "v"), 16),
    ("llama-3.1-8b", ("q", "k", "v", "o", "gate", "up", "down"), 64),
    ("falcon-7b", None, 8),  # PEFT's default for falcon: query_key_value
    ("mixtral-8x7b-v0.1", ("q", "k", "v", "o", "gate", "up", "down"), 16),
    ("phi-3-mini-4k-instruct", ("all-linear",), 16),
])
def test_lora_config_names_the_planned_modules(registry: Registry, model: str, targets: tuple[str, ...] | None,
                                               rank: int) -> None:
    r = plan(registry, model, method="lora", lora_rank=rank, lora_targets=targets, seq_tokens=128)
    emitted = emit_training("peft", r)
    module, class_name, kwargs = parse_call(emitted.text)
    assert (module, class_name) == ("peft", "LoraConfig") and kwargs == emitted.config
    assert kwargs["r"] == r.lora_rank == rank and kwargs["lora_alpha"] == 2 * rank
    if kwargs["target_modules"] != "all-linear":
        assert kwargs["target_modules"] == [m for m in r.lora_target_modules or [] if m in kwargs["target_modules"]]
    assert (kwargs["bias"], kwargs["task_type"], kwargs["lora_dropout"]) == ("none", "CAUSAL_LM", 0.0)
    # The trainable count the plan reports is what these modules at this rank add: r x (in + out) each.
    names = set(r.lora_target_modules or []) if kwargs["target_modules"] == "all-linear" else \
        set(kwargs["target_modules"]) | {p.rsplit(".", 1)[-1] for p in kwargs.get("target_parameters", [])}
    wrapped = [t for t in r.trainable_tensors if t.name.rsplit(".", 2)[-2] in names]
    assert sum(t.params for t in wrapped) == r.trainable_params
    if model == "mixtral-8x7b-v0.1":
        # transformers 5: the experts are 3-D parameters, reached through target_parameters.
        assert kwargs["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
        assert kwargs["target_parameters"] == ["experts.down_proj", "experts.gate_up_proj"]
    if model == "falcon-7b":
        assert kwargs["target_modules"] == ["query_key_value"]  # Falcon's fused QKV answers for q and v


def test_all_linear_is_emitted_as_peft_spells_it(registry: Registry) -> None:
    r = plan(registry, method="qlora", lora_targets=("all-linear",), seq_tokens=128)
    _, _, kwargs = parse_call(emit_training("peft", r).text)
    assert kwargs["target_modules"] == "all-linear"
    assert set(r.lora_target_modules or []) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                "down_proj"}


def test_ia3_and_prompt_methods(registry: Registry) -> None:
    ia3 = plan(registry, method="ia3", seq_tokens=128)
    module, class_name, kwargs = parse_call(emit_training("peft", ia3).text)
    assert (module, class_name) == ("peft", "IA3Config")
    # PEFT's Llama mapping: k_proj, v_proj scaled on their output; down_proj on its input (feed-forward).
    assert kwargs["target_modules"] == ["k_proj", "v_proj", "down_proj"]
    assert kwargs["feedforward_modules"] == ["down_proj"]
    for method, expected in (("prompt-tuning", "PromptTuningConfig"), ("prefix-tuning", "PrefixTuningConfig")):
        r = plan(registry, method=method, virtual_tokens=37, seq_tokens=128)
        _, class_name, kwargs = parse_call(emit_training("peft", r).text)
        assert class_name == expected and kwargs == {"num_virtual_tokens": r.virtual_tokens, "task_type": "CAUSAL_LM"}
        assert r.virtual_tokens == 37


@pytest.mark.parametrize("method", ["full", "adapter"])
def test_peft_for_a_method_peft_does_not_configure(registry: Registry, method: str) -> None:
    with pytest.raises(SpecError, match="needs a PEFT method"):
        emit_training("peft", plan(registry, method=method, seq_tokens=128))


@pytest.mark.parametrize(("quant", "precision", "zero", "gpus"), [
    ("nf4", "bf16-mixed", 0, 1), ("nf4-nodq", "bf16-mixed", 2, 2), ("nf4", "fp32", 0, 1), ("nf4", "bf16", 3, 4)])
def test_bnb_config_follows_the_qlora_base(registry: Registry, quant: str, precision: str, zero: int,
                                           gpus: int) -> None:
    r = plan(registry, method="qlora", qlora_format=quant, precision=precision, zero=zero, gpus=gpus, seq_tokens=128)
    assert r.base_format == quant
    module, class_name, kwargs = parse_call(emit_training("bnb", r).text)
    assert (module, class_name) == ("transformers", "BitsAndBytesConfig")
    assert kwargs["load_in_4bit"] is True and kwargs["bnb_4bit_quant_type"] == "nf4"
    assert kwargs["bnb_4bit_use_double_quant"] is (r.base_format == "nf4")
    assert kwargs["bnb_4bit_compute_dtype"] == ("float32" if precision == "fp32" else "bfloat16")
    assert ("bnb_4bit_quant_storage" in kwargs) == (r.zero == 3)


def test_double_quant_is_what_the_plan_weighs(registry: Registry) -> None:
    # Double quantization stores the fp32 absmax per 64 weights in 8 bits (QLoRA paper 3: 0.5 -> 0.127 bit
    # per parameter), so the plan without it weighs more.
    with_dq = plan(registry, method="qlora", qlora_format="nf4", seq_tokens=128)
    without = plan(registry, method="qlora", qlora_format="nf4-nodq", seq_tokens=128)
    assert without.frozen_weights_bytes > with_dq.frozen_weights_bytes
    assert "no double quant" in without.lines[0].name and "double quant" in with_dq.lines[0].name


@pytest.mark.parametrize("method", ["full", "lora", "ia3", "prompt-tuning"])
def test_bnb_needs_a_quantized_base(registry: Registry, method: str) -> None:
    with pytest.raises(SpecError, match="needs a quantized base"):
        emit_training("bnb", plan(registry, method=method, seq_tokens=128))


def test_unknown_target(registry: Registry) -> None:
    with pytest.raises(SpecError, match="allowed: deepspeed, peft, bnb"):
        emit_training("fsdp", plan(registry, method="lora", seq_tokens=128))


@pytest.mark.parametrize("transformers", [4, 5])
def test_emitted_peft_names_exist_in_every_preset(registry: Registry, transformers: int) -> None:
    """The PEFT config reproduces the plan: each target name is a module (or 3-D parameter) the model has, and
    the names account for exactly the trainable count the plan reports."""
    from llmfit.engine.peft_targets import layout

    for name in registry.model_names():
        spec = registry.model(name)
        names = {m.name for m in layout(spec, transformers).modules}
        for method, targets in (("lora", None), ("lora", ("all-linear",)), ("ia3", None)):
            r = finetune(spec, None, FinetuneOptions(method=method, lora_targets=targets, transformers=transformers,
                                                     seq_tokens=128))
            kwargs = emit_training("peft", r).config
            modules = kwargs["target_modules"]
            if modules != "all-linear":
                assert set(modules) <= names, (name, modules)
            for parameter in kwargs.get("target_parameters", []):
                assert parameter.rsplit(".", 1)[-1] in names
            for module in kwargs.get("feedforward_modules", []):
                assert module in modules
