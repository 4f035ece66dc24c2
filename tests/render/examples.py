"""Every command's default example (the README's and each --help's first example): what the golden and
layout tests render."""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "fit": ["fit", "70b", "--dtype", "int4", "--gpu", "a100-80", "--context", "8k"],
    "fit-dtype-all": ["fit", "70b", "--gpu", "a100-80", "--dtype", "all"],
    "fit-emit-vllm": ["fit", "mixtral-8x7b-v0.1", "--gpu", "a100-40x2", "--dtype", "awq", "--emit", "vllm"],
    "fit-multi-gpu": ["fit", "deepseek-v3", "--gpu", "h200x8"],
    "fit-llamacpp": ["fit", "llama-3.1-70b", "--engine", "llama.cpp", "--dtype", "q4_k_m", "--gpu", "rtx-4090",
                     "--ram", "64GB", "--emit", "llama.cpp"],
    "kv": ["kv", "llama-3.1-70b", "--context", "8k", "--batch", "16"],
    "finetune": ["finetune", "7b", "--method", "qlora", "--gpu", "rtx-4090", "--seq", "2048", "--batch", "4",
                 "--grad-checkpointing"],
    "plan": ["plan", "llama-3.1-70b", "--context", "32k", "--concurrency", "64", "--top", "5"],
    "decide": ["decide", "--problem", "knowledge", "--freshness", "weekly", "--private", "-n", "5000", "-m", "7b",
               "-g", "rtx-4090"],
    "quantize-demo": ["quantize-demo"],
    "presets-list": ["presets", "list"],
    "presets-show-model": ["presets", "show", "llama-3.1-70b"],
    "presets-show-gpu": ["presets", "show", "h100-80"],
}
