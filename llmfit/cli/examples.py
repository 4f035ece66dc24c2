"""The `Examples:` section that ends every command's --help: two or three commands a user can paste.

Click rewraps help paragraphs; a paragraph that starts with a `\\b` line is printed as written, which
keeps one command per line (typer passes the epilog to click as is with rich_markup_mode=None).
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "llmfit": [
        ("Does Llama-2-70B in int4 fit one A100-80, and at what concurrency?",
         "llmfit fit 70b --dtype int4 --gpu a100-80 --context 8k"),
        ("The cheapest deployment for 64 users at 32K context", "llmfit plan llama-3.1-70b --context 32k -k 64"),
        ("QLoRA memory of a 7B model on a 24 GB card",
         "llmfit finetune 7b --method qlora --gpu rtx-4090 --grad-checkpointing"),
    ],
    "fit": [
        ("One A100-80, int4 weights, 8K context: the verdict and the concurrency",
         "llmfit fit 70b --dtype int4 --gpu a100-80 --context 8k"),
        ("Every weight format on two A100-40s",
         "llmfit fit mixtral-8x7b-v0.1 --gpu a100-40x2 --dtype all"),
        ("Gate a CI job on 16 concurrent requests, reading one figure",
         "llmfit fit llama-3.1-8b --gpu l4 -k 16 --format json | jq .max_concurrency"),
    ],
    "kv": [
        ("KV cache of Llama-3.1-70B for 16 requests of 8K tokens", "llmfit kv llama-3.1-70b --context 8k --batch 16"),
        ("What a contiguous reservation wastes on 500-token requests",
         "llmfit kv 7b --context 4k --batch 8 --typical-tokens 500"),
        ("MLA at 32K with an fp8 cache, and a chart", "llmfit kv deepseek-v3 --context 32k --kv-dtype fp8 "
         "--plot kv.svg"),
    ],
    "finetune": [
        ("QLoRA of a 7B model on a 24 GB card", "llmfit finetune 7b --method qlora --gpu rtx-4090 --seq 2048 "
         "--batch 4 --grad-checkpointing"),
        ("Full fine-tune with ZeRO-3 on 8 GPUs, time and cost of 1B tokens",
         "llmfit finetune llama-3.1-8b --method full --zero 3 --gpu a100-80x8 --seq 4k --dataset-tokens 1e9"),
        ("The matching PEFT config", "llmfit finetune llama-3.1-8b --method lora --gpu a100-80 --emit peft"),
    ],
    "plan": [
        ("Every deployment serving 64 x 32K requests; the Pareto front",
         "llmfit plan llama-3.1-70b --context 32k --concurrency 64"),
        ("NVIDIA only, two formats, Markdown for a design doc",
         "llmfit plan llama-3.1-70b -k 64 --gpu-types h100-80,a100-80,h200 --dtypes bf16,fp8 --format markdown"),
        ("Price against throughput as a chart", "llmfit plan llama-3.1-8b -k 32 --plot plan.png"),
    ],
    "decide": [
        ("Private knowledge that changes weekly", "llmfit decide --problem knowledge --freshness weekly --private "
         "-n 5000 -m 7b -g rtx-4090"),
        ("Output format, a better prompt already tried", "llmfit decide -p format --prompt-tried -n 20k "
         "-m llama-3.1-8b -g rtx-4090"),
        ("The questions one by one (on a terminal)", "llmfit decide"),
    ],
    "quantize-demo": [
        ("The field guide's worked examples", "llmfit quantize-demo"),
        ("Your own weights, per-tensor int4", "llmfit quantize-demo --values 0.05,-0.4,0.9,1.7"),
    ],
    "presets": [
        ("Every GPU preset", "llmfit presets list --kind gpus"),
        ("One model with its sources", "llmfit presets show llama-3.1-70b"),
        ("Validate a folder of your own presets", "llmfit presets check ~/my-presets"),
    ],
    "presets list": [
        ("Every GPU preset", "llmfit presets list --kind gpus"),
        ("Models whose name or family mentions qwen", "llmfit presets list --kind models --filter qwen"),
    ],
    "presets show": [
        ("A model: computed vs published parameter counts", "llmfit presets show llama-3.1-70b"),
        ("A GPU by alias", "llmfit presets show h100"),
    ],
    "presets check": [
        ("Validate every preset of a folder (exit 2 names each bad file)", "llmfit presets check ~/my-presets"),
        ("Only the bad files, for a script", "llmfit presets check ./presets --format json "
         "| jq '.files[] | select(.valid | not)'"),
    ],
}


def epilog(command: str) -> str:
    """The examples of `command` as a click epilog: the heading, then one verbatim paragraph."""
    lines = []
    for comment, line in EXAMPLES[command]:
        lines += [f"  # {comment}", f"  {line}"]
    return "Examples:\n\n\b\n" + "\n".join(lines)
