"""Engine types, version profiles, interconnect, PP stages, SGLang's rule, the support matrix."""

from __future__ import annotations

import pytest

from llmfit.engine.engine_data import sglang_profiles
from llmfit.engine.engines import get_engine, mem_fraction_static
from llmfit.engine.formats import get_format
from llmfit.engine.runtime import overhead_lines, resolve_engine_version
from llmfit.engine.serving import Deployment, ServingOptions, fit, stage_layers
from llmfit.engine.support import support_status
from llmfit.errors import LlmfitError
from llmfit.presets import Registry
from llmfit.units import GIB, MIB


@pytest.mark.parametrize(("release", "profile"), [("0.6.4", "0.6"), ("v0.9.2", "0.8"), ("0.10.1.1", "0.8"),
                                                  ("0.11.0", "0.11"), ("0.12", "0.19"), ("0.19.0", "0.19"),
                                                  ("0.21.0", "0.21"), ("0.28.0", "0.21"), ("latest", "0.21")])
def test_any_release_number_picks_the_profile_covering_it(release: str, profile: str) -> None:
    assert resolve_engine_version(release) == profile


def test_bad_release_is_bad_input() -> None:
    with pytest.raises(LlmfitError):
        resolve_engine_version("banana")


def test_tp_non_torch_follows_the_interconnect(registry: Registry) -> None:
    # v0.19: 2.07 GiB at TP2 on NVLink H100 (llm-d PR #205); 0.2 GiB over PCIe (issue 14's L40S logs).
    spec = registry.model("llama-3.1-8b")
    lines = {ic: overhead_lines(spec, engine_version="0.19", tp=2, pp=1, gpu_memory_bytes=80 * GIB,
                                interconnect=ic)[0].bytes_per_gpu for ic in ("nvlink", "pcie")}
    assert lines["nvlink"] == round(2.07 * GIB) and lines["pcie"] == round(0.2 * GIB)
    assert registry.gpu("l40s").interconnect == "pcie" and registry.gpu("h100-80").interconnect == "nvlink"


def test_v021_counts_cuda_graphs_and_the_switch_turns_it_off(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    one = Deployment(gpu_count=1, tp=1, pp=1)
    on = fit(spec, gpu, fmt, one, ServingOptions(context_tokens=8192, engine_version="0.21"))
    off = fit(spec, gpu, fmt, one, ServingOptions(context_tokens=8192, engine_version="0.21",
                                                  cuda_graph_profiling=False))
    v019 = fit(spec, gpu, fmt, one, ServingOptions(context_tokens=8192, engine_version="0.19"))
    graph = next(line for line in on.overhead_lines if line.name.startswith("CUDA graph"))
    # min(2 x 1024, 512) tokens x 32 layers x (6144 + 4096 + 2 x 4096) x 2 B = 576 MiB
    assert graph.bytes_per_gpu == 512 * 32 * (6144 + 4096 + 8192) * 2
    assert off.kv_budget_bytes_per_gpu == v019.kv_budget_bytes_per_gpu
    assert on.kv_budget_bytes_per_gpu == off.kv_budget_bytes_per_gpu - graph.bytes_per_gpu


def test_pp_stages_split_as_vllm_and_only_the_last_samples(registry: Registry) -> None:
    assert stage_layers(32, 2) == [16, 16]
    assert stage_layers(28, 8) == [3, 3, 3, 4, 4, 4, 4, 3]
    assert stage_layers(10, 4) == [2, 3, 3, 2]  # get_pp_indices: extra layers on the stages before the last
    spec, gpu = registry.model("llama-3.1-8b"), registry.gpu("h100-80")
    result = fit(spec, gpu, get_format("bf16"), Deployment(gpu_count=2, tp=1, pp=2),
                 ServingOptions(context_tokens=8192, engine_version="0.19"))
    # The last stage holds the lm_head and samples: its pool is the smaller one.
    assert result.limiting_stage == 1
    assert result.stage_weights_bytes_per_gpu[0] != result.stage_weights_bytes_per_gpu[1]


def test_sglang_fraction_is_of_free_memory_and_from_capacity(registry: Registry) -> None:
    v05, v04 = sglang_profiles().profiles[-1], sglang_profiles().profiles[0]
    # server_args.py v0.5: (81559 - (512 + 8192 x 1.5 + 256 x 2 + 128)) / 81559 = 0.835 on an 80 GB H100
    assert mem_fraction_static(v05, 81559, 1, 1)[0] == 0.835
    # v0.4: (81559 - (9.5 + 0.5) x 1024) / 81559 = 0.874; L40S (46068 MiB): (46068 - 10.0 x 1024)/... is the
    # < 90 GiB class too
    assert mem_fraction_static(v04, 81559, 1, 1)[0] == 0.874
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    result = get_engine("sglang").fit(spec, gpu, fmt, Deployment(gpu_count=1, tp=1, pp=1),
                                      ServingOptions(context_tokens=8192))
    in_use = round(0.25 * GIB)  # CUDA context at start-up (assumed: vLLM v0.19's TP1 non-torch)
    expected = int(gpu.memory * 0.835) - result.loaded_weights_bytes_per_gpu - round(in_use * 0.835)
    assert abs(result.kv_budget_bytes_per_gpu - expected) <= 2
    assert result.block_size == 1 and result.kv_tokens == result.kv_budget_bytes_per_gpu // 131072


def test_support_matrix(registry: Registry) -> None:
    assert support_status("vllm", registry.gpu("a100-80"), get_format("fp8"))[0] == "weight-only"
    assert support_status("vllm", registry.gpu("h100-80"), get_format("fp8"))[0] == "native"
    assert support_status("trt-llm", registry.gpu("mi300x"), get_format("bf16"))[0] == "unsupported"
    assert support_status("vllm", registry.gpu("m4-max"), get_format("bf16"))[0] == "unsupported"
    assert support_status("llama.cpp", registry.gpu("m4-max"), get_format("q4_k_m"))[0] == "native"
    assert support_status("llama.cpp", registry.gpu("h100-80"), get_format("q4_k_m"), "fp8")[0] == "unsupported"
    assert support_status("vllm", registry.gpu("t4"), get_format("bf16"))[0] == "weight-only"


def test_gpu_presets_hold_the_cuda_total_and_the_nvidia_smi_figure(registry: Registry) -> None:
    l40s = registry.gpu("l40s")
    assert l40s.memory == round(44.42 * GIB) and l40s.nvidia_smi_memory == 46068 * MIB


def test_every_engine_has_a_launch_command_or_says_why(registry: Registry) -> None:
    spec, gpu, fmt = registry.model("llama-3.1-8b"), registry.gpu("h100-80"), get_format("bf16")
    for name in ("vllm", "sglang", "trt-llm"):
        engine = get_engine(name)
        result = engine.fit(spec, gpu, fmt, Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=4096))
        assert engine.launch_command(result, "meta-llama/Llama-3.1-8B").argv
        assert engine.engine_report(result)
    vllm = get_engine("vllm")
    planned = vllm.fit(spec, gpu, fmt, Deployment(gpu_count=1, tp=1, pp=1), ServingOptions(context_tokens=4096))
    pinned = vllm.launch_command(planned, "m", pin_kv_pool=True).argv
    assert pinned[pinned.index("--kv-cache-memory-bytes") + 1] == str(planned.kv_budget_bytes_per_gpu)
