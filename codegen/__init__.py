"""sdxfer's generator: schema file -> model -> layout -> C, Python and Markdown.

    load_schema (schema.py)   YAML with line numbers -> validated Schema
    compute_layout (layout.py) Schema -> Layout, the one record layout
    render_all (render.py)    Layout -> {file name: text}
"""
from __future__ import annotations

from .layout import compute_layout
from .render import render_all, render_python
from .schema import Problem, SchemaError, load_schema

__all__ = ["Problem", "SchemaError", "generate", "generate_python", "load_schema"]


def generate(schema_path: str) -> dict[str, str]:
    """Every generated file for the schema: {file name: text}."""
    return render_all(compute_layout(load_schema(schema_path)))


def generate_python(schema_path: str) -> str:
    return render_python(compute_layout(load_schema(schema_path)))
