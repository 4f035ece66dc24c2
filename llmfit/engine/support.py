"""What each engine runs, by GPU architecture, weight format and KV dtype (configs/engines/support.yaml).

`support_status(engine, gpu, fmt, kv_dtype)` -> (status, source): native, weight-only fallback or unsupported;
plan leaves out what cannot run, fit warns about the rest. `dtype_support_warnings` keeps fit's warnings.

Native support by architecture (NVIDIA CUDA programming guide, compute capabilities): bf16 tensor cores
from Ampere (8.0) on, fp8 from Ada/Hopper (8.9 / 9.0), fp4 (MXFP4/NVFP4) from Blackwell (10.0). vLLM
runs fp8 and MXFP4 checkpoints on older GPUs with weight-only kernels (Marlin / Triton) that
dequantize to 16 bits inside the matmul: the memory is as computed, the compute is 16-bit.
"""

from __future__ import annotations

from llmfit.engine.engine_data import support_matrix
from llmfit.engine.formats import WeightFormat
from llmfit.specs import GpuSpec


def architecture(gpu: GpuSpec) -> str:
    """The support matrix's architecture name for a GPU (compute capability, or the vendor)."""
    if gpu.vendor == "apple":
        return "apple"
    cc = gpu.compute_capability or ""
    for name, capabilities in support_matrix().architectures.items():
        if cc in capabilities:
            return name
    return "unknown"


def format_family(fmt: WeightFormat) -> str:
    name = fmt.name.lower()
    for family in ("gptq", "awq", "nf4-nodq", "nf4", "mxfp4", "fp8"):
        if name.startswith(family):
            return family
    if fmt.gguf_mix is not None or name.startswith(("q2", "q3", "q4", "q5", "q6", "q8", "iq")):
        return "gguf"
    return name  # fp32, fp16, bf16, int8, int4, int8-raw, int4-raw


def support_status(engine: str, gpu: GpuSpec, fmt: WeightFormat, kv_dtype: str = "auto") -> tuple[str, str]:
    """(native | weight-only | unsupported, source) for this engine, GPU, weight format and KV dtype."""
    arch, family = architecture(gpu), format_family(fmt)
    kv = "fp8" if kv_dtype.startswith("fp8") else kv_dtype
    for rule in support_matrix().rules:
        if rule.matches(engine, arch, family, kv):
            return rule.status, rule.source
    return "native", "no rule"


def runs(engine: str, gpu: GpuSpec, fmt: WeightFormat, kv_dtype: str = "auto") -> bool:
    """Whether the engine starts at all with this combination (plan leaves out what does not)."""
    return support_status(engine, gpu, fmt, kv_dtype)[0] != "unsupported"


def dtype_support_warnings(fmt: WeightFormat, kv_dtype: str, gpu: GpuSpec) -> list[str]:
    if not gpu.native_dtypes:
        return []  # unknown device: nothing to say
    native = set(gpu.native_dtypes)
    name = gpu.display_name or gpu.name
    warnings: list[str] = []
    if fmt.name == "bf16" and "bf16" not in native:
        fallback = "fp16 (vLLM: --dtype half)" if "fp16" in native else "fp32"
        warnings.append(f"{name} has no bf16 support: the engine would run the weights as {fallback}; "
                        "same memory at fp16, double at fp32")
    if fmt.needs_native == "fp8" and "fp8" not in native and support_status("vllm", gpu, fmt)[0] == "weight-only":
        warnings.append(f"{name} has no FP8 tensor cores: vLLM would run these fp8 weights with weight-only "
                        "FP8 Marlin kernels (dequantized to 16 bits in the matmul); memory as shown, 16-bit speed")
    if fmt.needs_native == "fp4" and "fp4" not in native:
        warnings.append(f"{name} has no FP4 tensor cores: vLLM would run MXFP4 weights with weight-only kernels "
                        "(Marlin/Triton), dequantizing to 16 bits; memory as shown, 16-bit speed")
    if kv_dtype.startswith("fp8") and "fp8" not in native:
        warnings.append(f"{name} has no FP8 support: an fp8 KV cache is stored in 8 bits but converted to 16 bits "
                        "for attention in software (slower, same memory)")
    if kv_dtype == "bf16" and "bf16" not in native:
        warnings.append(f"{name} has no bf16: the KV cache would be fp16 (same size)")
    return warnings
