"""llmfit: a capacity planner for large language models that shows its arithmetic.

`from llmfit import fit, kv, finetune, plan, decide, run, batch` gives the Python API (llmfit/api.py,
docs/api.md); it is imported on first use, so `import llmfit` stays free of the CLI and the engine.
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (`llmfit --version` reads this module)
if TYPE_CHECKING:
    from typing import Any

    from llmfit.api import Answer, batch, decide, finetune, fit, kv, plan, run

_API = ("Answer", "batch", "decide", "finetune", "fit", "kv", "plan", "run")
__all__ = ["Answer", "__version__", "batch", "decide", "finetune", "fit", "kv", "plan", "run"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from llmfit import api

        return getattr(api, name)
    raise AttributeError(f"module 'llmfit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
