"""Renderers: the same result object as a Rich table, JSON or Markdown. A renderer never computes."""

from enum import Enum


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
