"""Readers of model files (weights, tensors): the I/O the pure engine never does."""
