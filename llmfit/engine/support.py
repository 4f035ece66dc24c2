"""Does the GPU run this format natively? Warnings naming what the engine does instead.

Native support by architecture (NVIDIA CUDA programming guide, compute capabilities): bf16 tensor cores
from Ampere (8.0) on, fp8 from Ada/Hopper (8.9 / 9.0), fp4 (MXFP4/NVFP4) from Blackwell (10.0). vLLM
runs fp8 and MXFP4 checkpoints on older GPUs with weight-only kernels (Marlin / Triton) that
dequantize to 16 bits inside the matmul: the memory is as computed, the compute is 16-bit.
"""

from __future__ import annotations

from llmfit.engine.formats import WeightFormat
from llmfit.specs import GpuSpec


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
    if fmt.needs_native == "fp8" and "fp8" not in native:
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
