"""The ``repocket`` command line (also ``python -m repocket``).

Commands:

``repocket demo``
    Runs the tutorial end to end.
``repocket ping --url URL``
    Checks that the storage at URL answers.
``repocket models --url URL --import app.models``
    Lists the models an application declares, their fields and record counts.
``repocket inspect --url URL MODEL ID``
    Prints a record's stored envelopes and the values they decode to.
``repocket check --url URL --import app.models [MODEL]...``
    Verifies that the models' index data matches their records.
``repocket reindex --url URL --import app.models [MODEL]...``
    Rebuilds the models' index data from their records.

Every command that talks to storage takes ``--url``, which defaults to the
``REPOCKET_URL`` environment variable, then to ``redis://localhost:6379/0``.
Failures exit with status 1 and one ``Error:`` line on standard error; usage
mistakes exit with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .text import as_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .attributes import Attribute
    from .model import ActiveRecord
    from .storage import Storage

DEFAULT_URL = "redis://localhost:6379/0"
URL_ENVVAR = "REPOCKET_URL"

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 80}
_PREVIEW_BYTES = 200

url_option = click.option(
    "--url",
    envvar=URL_ENVVAR,
    show_envvar=True,
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="Storage to use: redis://, rediss://, unix://, memory://NAME, or a plugin's scheme.",
)


@click.group(context_settings=_CONTEXT)
@click.version_option(__version__, prog_name="repocket")
def main() -> None:
    """repocket: an active-record ORM for Python on Redis."""


@main.command()
@click.option(
    "--url",
    default="memory://",
    show_default=True,
    metavar="URL",
    help="Storage to run against, e.g. redis://localhost:6379/0.",
)
@click.option("--keep", is_flag=True, help="Leave the demo's records in storage.")
def demo(url: str, keep: bool) -> None:
    """Run the tutorial end to end, printing what it stores."""
    from .demo import run
    from .errors import RepocketError

    try:
        run(url, echo=click.echo, keep=keep)
    except RepocketError as exc:  # a bad --url above all: one Error: line, no traceback
        raise click.ClickException(str(exc)) from exc


@main.command()
@url_option
def ping(url: str) -> None:
    """Check that the storage at URL answers.

    Prints PONG and where the storage is; exits with status 1 when it cannot
    be reached.
    """
    from .backend_registry import backend_for_url
    from .errors import RepocketError

    try:
        storage = backend_for_url(url)
    except RepocketError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        started = time.perf_counter()
        storage.ping()
        elapsed = time.perf_counter() - started
    except RepocketError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        storage.close()
    click.echo(f"PONG from {storage.describe()} in {elapsed * 1000:.1f} ms")


@main.command()
@url_option
@click.option(
    "--import",
    "imports",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Module declaring models, e.g. app.models; may be repeated.  "
    "Models of its submodules are listed too.",
)
def models(url: str, imports: tuple[str, ...]) -> None:
    """List the models declared in the imported modules.

    For each model: its full name, how many records storage holds, and its
    fields in declaration order with their types.
    """
    from .errors import RepocketError

    declared = _models_of(_import_modules(imports))
    if not declared:
        raise click.ClickException(f"no repocket models are declared in {', '.join(imports)}")
    _configure(url)
    for model in declared:
        try:
            count = model.objects.count()
        except RepocketError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{_label(model)}: {count} record{'' if count == 1 else 's'}")
        width = max(len(name) for name in model._meta.fields)
        for name, field in model._meta.fields.items():
            click.echo(f"  {name:<{width}}  {_describe_field(field)}")


@main.command()
@url_option
@click.option(
    "--import",
    "imports",
    multiple=True,
    metavar="MODULE",
    help="Module declaring models, e.g. app.models; may be repeated.  "
    "A bare MODEL name is looked up among its models and its submodules'.",
)
@click.argument("model_name", metavar="MODEL")
@click.argument("record_id", metavar="ID")
def inspect(url: str, imports: tuple[str, ...], model_name: str, record_id: str) -> None:
    """Print one record's stored envelopes and the values they decode to.

    MODEL is package.module.Name (the module is imported), or just Name when
    exactly one model of the --import modules has that name.  ID is the
    record's id.  Exits with status 1 when the record does not exist or a
    field cannot be decoded.
    """
    from .errors import EnvelopeError, RepocketError
    from .serialization import loads

    model = _find_model(model_name, _models_of(_import_modules(imports)))
    pk_field = model._meta.fields[model._meta.primary_key]
    try:
        record_id = str(pk_field.cast(record_id))
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(
            f"{record_id!r} is not a {_label(model)} id: {exc}", param_hint="ID"
        ) from exc
    storage = _configure(url)
    collection = model._meta.collection
    key = collection.record_key(record_id)
    streams = model._meta.stream_fields
    try:
        fields, stream_values = _read_raw(storage, model, record_id)
    except RepocketError as exc:
        raise click.ClickException(str(exc)) from exc
    if fields is None:
        raise click.ClickException(
            f"no {_label(model)} record {record_id} in {storage.describe()} (key {key})"
        )

    click.echo(f"{_label(model)} {record_id}")
    click.echo(f"hash {key} in {storage.describe()}")
    failures = 0
    for name, field in model._meta.fields.items():
        click.echo("")
        if name in streams:
            click.echo(
                f"{name} ({type(field).__name__}, key {collection.stream_key(record_id, name)})"
            )
            click.echo(f"  stored:  {_preview_bytes(stream_values.get(name, b''))}")
            continue
        click.echo(f"{name} ({type(field).__name__})")
        raw = fields.get(name)
        if raw is None:
            click.echo("  stored:  (nothing; loads as the field's default or empty value)")
            continue
        click.echo(f"  stored:  {as_text(raw)}")
        try:
            value = loads(field, raw, key=key, field=name)
        except EnvelopeError as exc:
            failures += 1
            click.echo(f"  error:   {exc}")
        else:
            click.echo(f"  decoded: {value!r}")
    for name in sorted(set(fields) - set(model._meta.fields)):
        click.echo("")
        click.echo(f"{name} (not declared by {_label(model)}; ignored when loading)")
        click.echo(f"  stored:  {as_text(fields[name])}")
    if failures:
        raise click.ClickException(
            f"{failures} field{'' if failures == 1 else 's'} of {key} cannot be decoded"
        )


_imports_option = click.option(
    "--import",
    "imports",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Module declaring models, e.g. app.models; may be repeated.",
)


@main.command()
@url_option
@_imports_option
@click.argument("model_names", nargs=-1, metavar="[MODEL]...")
def check(url: str, imports: tuple[str, ...], model_names: tuple[str, ...]) -> None:
    """Verify that each model's index data matches its stored records.

    Compares the index with the records in both directions (every record
    listed by the index, every record found by scanning storage, every entry
    of the index structures, and keys nothing should hold); changes nothing.
    Prints a summary per model and exits with status 1 when any record is
    missing from the index or indexed under stale values, the index lists a
    record or holds an entry that does not exist, or a stray key is found.
    MODEL names (default: every imported model) may be Name or
    package.module.Name.
    """
    from .errors import RepocketError

    failed = False
    for model in _selected_models(imports, model_names, url):
        try:
            with _progress(model, "checking") as bar:
                report = model.objects.check(progress=bar.update)
        except RepocketError as exc:
            raise click.ClickException(str(exc)) from exc
        state = "ok" if report.ok else "INCONSISTENT"
        click.echo(
            f"{_label(model)}: {state}: {report.checked} checked, "
            f"{report.count('missing')} missing, {report.count('stale')} stale, "
            f"{report.count('orphans')} orphaned, "
            f"{report.count('orphan_entries')} orphaned entries, "
            f"{report.count('stray_keys')} stray keys"
        )
        for field_name, term, holder in report.orphan_claims[:10]:
            click.echo(f"  orphaned claim: {field_name}={term} -> {holder}")
        if report.count("orphan_claims") > 10:
            click.echo(f"  ... {report.count('orphan_claims') - 10} more orphaned claims")
        for name, holders in sorted(report.undeclared_fields.items()):
            click.echo(f"  undeclared field: {name} (held by {holders} record(s); kept on save)")
        for kind, attribute in (
            ("missing", "missing"),
            ("stale", "stale"),
            ("orphaned", "orphans"),
            ("orphaned entry", "orphan_entries"),
            ("stray key", "stray_keys"),
        ):
            items = getattr(report, attribute)
            for item in items[:10]:
                shown = f"{item[0]} -> {item[1]}" if isinstance(item, tuple) else item
                click.echo(f"  {kind}: {shown}")
            if report.count(attribute) > 10:
                click.echo(f"  ... and {report.count(attribute) - 10} more")
        failed = failed or not report.ok
    if failed:
        click.echo("run `repocket reindex` to rebuild the index data", err=True)
        sys.exit(1)


@main.command()
@url_option
@_imports_option
@click.argument("model_names", nargs=-1, metavar="[MODEL]...")
def reindex(url: str, imports: tuple[str, ...], model_names: tuple[str, ...]) -> None:
    """Rebuild each model's index data from its stored records.

    For records written before an index existed, or by repocket 0.0.1, or
    after `repocket check` reported inconsistencies.  Run it while nothing
    else writes these models.  MODEL names (default: every imported model)
    may be Name or package.module.Name.
    """
    from .errors import RepocketError

    for model in _selected_models(imports, model_names, url):
        try:
            with _progress(model, "reindexing") as bar:
                indexed = model.objects.reindex(progress=bar.update)
        except RepocketError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{_label(model)}: {indexed} record{'' if indexed == 1 else 's'} indexed")


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _selected_models(
    imports: Sequence[str], names: Sequence[str], url: str
) -> list[type[ActiveRecord]]:
    declared = _models_of(_import_modules(imports))
    if not declared:
        raise click.ClickException(f"no repocket models are declared in {', '.join(imports)}")
    selected = [_find_model(name, declared) for name in names] if names else declared
    _configure(url)
    return selected


def _progress(model: type[ActiveRecord], verb: str) -> Any:
    """A progress bar sized by the model's indexed record count (an estimate)."""
    from .errors import RepocketError

    try:
        estimate = model.objects.count()
    except RepocketError as exc:
        raise click.ClickException(str(exc)) from exc
    return click.progressbar(
        length=max(estimate, 1), label=f"{verb} {_label(model)}", file=sys.stderr, show_pos=True
    )


def _configure(url: str) -> Storage:
    """Make the storage at ``url`` the global one, turning errors into CLI errors."""
    from .connections import configure
    from .errors import RepocketError

    try:
        return configure.from_url(url)
    except RepocketError as exc:
        raise click.ClickException(str(exc)) from exc


def _import_modules(names: Iterable[str]) -> list[str]:
    """Import each module, from the current directory too, as ``python -m`` would."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
    imported = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any failure of the application's import code
            raise click.ClickException(
                f"cannot import {name}: {type(exc).__name__}: {exc}"
            ) from exc
        imported.append(name)
    return imported


def _models_of(modules: Sequence[str]) -> list[type[ActiveRecord]]:
    """The registered models declared in ``modules`` or their submodules, in order."""
    from .registry import models as registered

    found: list[type[ActiveRecord]] = []
    for module in modules:
        for (model_module, _), model in registered().items():
            if (
                model_module == module or model_module.startswith(module + ".")
            ) and model not in found:
                found.append(model)
    return found


def _find_model(name: str, imported: Sequence[type[ActiveRecord]]) -> type[ActiveRecord]:
    """Resolve MODEL: ``package.module.Name``, or ``Name`` unique among ``imported``."""
    from .registry import models as registered

    if "." in name:
        module, _, short = name.rpartition(".")
        _import_modules([module])
        model = registered().get((module, short))
        if model is None:
            raise click.BadParameter(
                f"{module} declares no model named {short}", param_hint="MODEL"
            )
        return model
    matches = [model for model in imported if model.__name__ == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.BadParameter(
            f"{name} is ambiguous: {', '.join(_label(m) for m in matches)}; give the full name",
            param_hint="MODEL",
        )
    known = ", ".join(_label(m) for m in imported) or "none (use --import app.models)"
    raise click.BadParameter(
        f"no imported model is named {name}; imported models: {known}", param_hint="MODEL"
    )


def _read_raw(
    storage: Storage, model: type[ActiveRecord], record_id: str
) -> tuple[Mapping[str, str | bytes] | None, Mapping[str, bytes]]:
    """A record's hash fields and streams exactly as stored (the bytes the
    backend holds, not decoded), or ``(None, {})``."""
    stored = storage.load_record(model._meta.collection, record_id, model._meta.stream_fields)
    if stored is None:
        return None, {}
    return stored.fields, stored.streams


#: index kinds in the order they are shown
_INDEX_ORDER = {"eq": 0, "range": 1, "prefix": 2}


def _describe_field(field: Attribute) -> str:
    """``Unicode (indexed: eq, unique)``, ``Pointer -> app.models.Project (indexed: eq)``,
    ``DateTime (indexed: range, null, auto_now)``, ``JSON (default=dict())``...

    ``indexed:`` lists the field's index kinds (a field without it is found
    only by reading every record); a callable default is shown as a call,
    since it is called for each new record.
    """
    from .attributes import Pointer

    text = type(field).__name__
    if isinstance(field, Pointer):
        try:
            text += f" -> {_label(field.to_model)}"
        except Exception:  # an unresolvable target name; say what was declared
            text += f" -> {field._to_model!s} (unresolved)"
    flags = []
    if field.indexes:
        kinds = sorted(field.indexes, key=lambda k: (_INDEX_ORDER.get(k, len(_INDEX_ORDER)), k))
        flags.append(f"indexed: {'+'.join(kinds)}")
    flags += [
        flag
        for flag, on in (
            ("unique", field.unique),
            ("null", field.null),
            ("auto_now", getattr(field, "auto_now", False)),
        )
        if on
    ]
    if field.default is not None:
        flags.append(f"default={_describe_default(field.default)}")
    return f"{text} ({', '.join(flags)})" if flags else text


def _describe_default(default: Any) -> str:
    """A value default as its repr; a callable as the call made per record."""
    if not callable(default):
        return repr(default)
    name = getattr(default, "__name__", None)
    return f"{name}()" if isinstance(name, str) else f"<callable {default!r}>"


def _label(model: type) -> str:
    return f"{model.__module__}.{model.__name__}"


def _preview_bytes(data: bytes) -> str:
    if len(data) <= _PREVIEW_BYTES:
        return f"{data!r} ({len(data)} bytes)"
    return f"{data[:_PREVIEW_BYTES]!r}... ({len(data)} bytes)"
