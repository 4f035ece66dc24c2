"""llmfit: a capacity planner for large language models that shows its arithmetic."""

__version__ = "0.1.0"
