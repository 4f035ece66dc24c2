"""`llmfit presets list|show`: the model and GPU presets, with sources and parameter-count checks."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from llmfit.cli.common import FormatOpt, PresetsOpt, UnitsOpt, emit, handle_errors
from llmfit.cli.examples import epilog
from llmfit.render import OutputFormat
from llmfit.units import DisplayUnits

presets_app = typer.Typer(name="presets", help="List, show and check model and GPU presets (with sources).",
                          no_args_is_help=True, epilog=epilog("presets"))


class Kind(str, Enum):
    models = "models"
    gpus = "gpus"


def _origin(path: Path | None) -> str:
    from llmfit.presets import builtin_dir

    if path is None:
        return "unknown"
    try:
        path.resolve().relative_to(builtin_dir().resolve())
    except ValueError:
        return str(path)
    return "built-in"


@presets_app.command("list", epilog=epilog("presets list"))
@handle_errors
def list_command(
    kind: Annotated[Kind | None, typer.Option("--kind", "-k", help="Only models or only gpus.",
                                              case_sensitive=False, show_default=False)] = None,
    filter_text: Annotated[str | None, typer.Option("--filter", help="Case-insensitive text in the name, alias, "
                                                    "hf_id, family or vendor.", show_default=False)] = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    presets: PresetsOpt = None,
) -> None:
    """Every preset, built-in and from user folders (a user preset overrides a built-in of the same name)."""
    from llmfit.cli import resolve
    from llmfit.engine.catalog import PresetList, gpu_entry, matches, model_entry
    from llmfit.render.presets import list_document

    reg = resolve.registry(presets)
    models, gpus = [], []
    if kind in (None, Kind.models):
        for name in reg.model_names():
            spec = reg.model(name)
            if filter_text and not matches(filter_text, spec.name, spec.hf_id, spec.family, spec.architecture,
                                           *spec.aliases):
                continue
            models.append(model_entry(spec, _origin(reg.model_files[name])))
    if kind in (None, Kind.gpus):
        for name in reg.gpu_names():
            gpu = reg.gpu(name)
            if filter_text and not matches(filter_text, gpu.name, gpu.display_name, gpu.vendor, *gpu.aliases):
                continue
            gpus.append(gpu_entry(gpu, _origin(reg.gpu_files[name])))
    result = PresetList(models=models, gpus=gpus)
    emit(fmt, result, lambda: list_document(result, units))


@presets_app.command("show", epilog=epilog("presets show"))
@handle_errors
def show_command(
    name: Annotated[str, typer.Argument(help="A model or GPU preset (or alias); a model may also be a config.json, "
                                        "snapshot folder, .gguf or HF repo id.")],
    kind: Annotated[Kind | None, typer.Option("--kind", "-k", help="Look only among models or gpus.",
                                              case_sensitive=False, show_default=False)] = None,
    fmt: FormatOpt = OutputFormat.table,
    units: UnitsOpt = DisplayUnits.gib,
    presets: PresetsOpt = None,
) -> None:
    """One preset with its sources: computed vs published parameter counts, active parameters for MoE."""
    from llmfit.cli import resolve
    from llmfit.engine.catalog import gpu_detail, model_detail
    from llmfit.errors import UnknownPresetError
    from llmfit.render.presets import gpu_document, model_document

    reg = resolve.registry(presets)
    error: UnknownPresetError | None = None
    if kind in (None, Kind.models):
        try:
            spec = resolve.resolve_model(name, reg)
        except UnknownPresetError as missing:
            error = missing
        else:
            if spec.checkpoint is not None:
                origin = spec.checkpoint.path
            else:
                path = reg.model_files.get(name.lower()) or reg.model_files.get(spec.name.lower()) or next(
                    (p for key, p in reg.model_files.items() if reg.model(key).name == spec.name), None)
                origin = _origin(path)
            detail = model_detail(spec, origin)
            emit(fmt, detail, lambda: model_document(detail, units))
            return
    if kind in (None, Kind.gpus):
        try:
            gpu = reg.gpu(name)
        except UnknownPresetError as missing:
            raise (error if error is not None and kind is None and not missing.suggestions else missing) from None
        gdetail = gpu_detail(gpu, _origin(reg.gpu_files.get(gpu.name.lower())))
        emit(fmt, gdetail, lambda: gpu_document(gdetail, units))
        return
    assert error is not None
    raise error


@presets_app.command("check", epilog=epilog("presets check"))
@handle_errors
def check_command(
    folder: Annotated[Path, typer.Argument(help="A preset folder: models/*.yaml and gpus/*.yaml inside it.",
                                           show_default=False)],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Validate every preset in FOLDER. Exit 0 all valid, 2 if any file is bad (each named on stderr)."""
    from llmfit.cli.common import printed, warn
    from llmfit.errors import ExitCode
    from llmfit.presets import check_dir
    from llmfit.render.presets import check_document

    checked, warnings = check_dir(folder)
    for message in warnings:
        warn(message)
    bad = [c for c in checked if c.error is not None]
    for item in bad:
        printed(f"error: {item.error}", item.error or "")
    result = {"folder": str(folder), "valid": not bad, "files_checked": len(checked), "files_bad": len(bad),
              "files": [{"path": str(c.path), "kind": c.kind, "valid": c.error is None, "error": c.error}
                        for c in checked]}
    emit(fmt, result, lambda: check_document(folder, checked))
    raise typer.Exit(int(ExitCode.USAGE if bad else ExitCode.OK))


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets")
