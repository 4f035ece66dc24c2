"""Fixtures: the model files of model_files.py, written into tmp_path."""

from model_files import gptq_snapshot, sharded_snapshot, snapshot

__all__ = ["gptq_snapshot", "sharded_snapshot", "snapshot"]
