"""``zenrec`` command line: thin commands over the library.

Every command maps zenrec's own errors to a one-line message and exit code 2
(no traceback); only this module configures logging and draws progress.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from zenrec import __version__
from zenrec._io import check_dir_target
from zenrec.cli.common import commands, err, out
from zenrec.errors import ConfigError, DataError

app = typer.Typer(
    name="zenrec",
    help=(
        "zenrec: behaviour logs → cleaned data → models → honest full-ranking evaluation → Top-N.\n\n"
        "Typical flow:\n\n"
        "  zenrec ingest events.csv --user user_id --item product_id --time ts --event type -o data/\n\n"
        "  zenrec compare data/ --protocol general --models pop,itemknn,ease,als,lmf\n\n"
        "  zenrec train data/ --model ease -o models/ease\n\n"
        "  zenrec recommend models/ease --user 42 -k 10"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
log = logging.getLogger("zenrec")
command = commands(app)


def _version(value: bool) -> None:
    if value:
        out.print(f"zenrec {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress details")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="show the version")
    ] = None,
) -> None:
    """Configure logging for the whole run."""
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=False)],
    )


# ------------------------------------------------------------------ helpers
def _parse_params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--param expects NAME=VALUE; got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    return params


def _model_specs(names: list[str], items: list[str] | None, option: str = "--param") -> list[tuple[str, dict[str, Any]]]:
    """``(name, params)`` per model from ``--param MODEL.NAME=VALUE`` values (e.g. ``sasrec.epochs=20``)."""
    per: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in _parse_params(items).items():
        model, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(f"{option} expects MODEL.NAME=VALUE, such as sasrec.epochs=20; got {key}={value!r}")
        if model not in per:
            raise ConfigError(f"{option} {key}: {model!r} is not among the models ({', '.join(names)})")
        per[model][name] = value
    return [(n, per[n]) for n in names]


def _aliases(items: list[str] | None) -> dict[str, str]:
    """``--event-alias NAME=TYPE`` values as a mapping (names as written; the cleaning config lowercases)."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ConfigError(f"--event-alias expects NAME=TYPE, such as buy=purchase; got {item!r}")
        out[name.strip()] = target.strip()
    return out


def _parse_list(value: str, what: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not items:
        raise ConfigError(f"{what} must be a comma-separated list; got {value!r}")
    return items


def _item_columns(items: Path | None, text: list[str] | None, cat: list[str] | None, multi: list[str] | None,
                  sep: str, num: list[str] | None) -> Any:
    """The item feature columns declared by ``--item-text/--item-cat/--item-multi/--item-num`` (None: none)."""
    from zenrec.data.items import ItemColumns

    flags = {"--item-text": text, "--item-cat": cat, "--item-multi": multi, "--item-num": num}
    lists = {flag: [c for v in values or [] for c in _parse_list(v, flag)] for flag, values in flags.items()}
    given = [flag for flag, cols in lists.items() if cols]
    if not given:
        return None
    if items is None:
        raise ConfigError(f"{given[0]} declares columns of the item table; give the table with --items FILE")
    return ItemColumns(tuple(lists["--item-text"]), tuple(lists["--item-cat"]),
                       {c: sep for c in lists["--item-multi"]}, tuple(lists["--item-num"]))


def _parse_ks(value: str) -> list[int]:
    from zenrec.retrieval.base import check_k

    try:
        return [check_k(int(x), "-k/--ks") for x in _parse_list(value, "-k/--ks")]
    except ValueError:
        raise ConfigError(f"-k/--ks must be positive integers like 10,20; got {value!r}") from None


def _load_dataset(path: Path):
    from zenrec.data.dataset import Dataset

    if not path.exists():
        raise DataError("not found (expected a directory written by `zenrec ingest`)", source=str(path))
    if path.is_file():
        raise DataError(
            "is a file; run `zenrec ingest` on it first to get a dataset directory", source=str(path)
        )
    return Dataset.load(path)


def _declared_side(data: Path, split_dir: Path | None, names: list[str]) -> Any:
    """The item features declared at ingest, for the models that read them (None when none does or with --split)."""
    from zenrec.features.side import ItemFeatures
    from zenrec.models.registry import get_model_class

    if split_dir is not None or not any(get_model_class(n).uses_side for n in names):
        return None
    return ItemFeatures.declared(_load_dataset(data))


def _load_split(data: Path, protocol: str, seed: int, split_dir: Path | None, target_event: str | None = None):
    from zenrec.data.splits import load_split, split_dataset

    if split_dir is not None:
        split, ds = load_split(split_dir)  # with the target types `zenrec split --target-event` recorded
        return split if target_event is None else split.with_target_events(target_event, ds.event_aliases)
    return split_dataset(_load_dataset(data), protocol, seed, target_events=target_event)  # type: ignore[arg-type]


#: the help of --target-event (split, compare, tune)
_TARGET_EVENT_HELP = (
    "evaluate on held-out events of these types only, e.g. purchase or purchase,cart (a dataset's alias such as "
    "buy works too); the split and training keep every event"
)


def _report_table(report: dict) -> Table:
    t = Table(title="cleaning report", show_edge=False)
    t.add_column("reason")
    t.add_column("rows", justify="right")
    t.add_column("first rows")
    for reason, n in sorted(report["dropped"].items(), key=lambda kv: -kv[1]):
        t.add_row(reason, f"{n:,}", ", ".join(report["examples"].get(reason, [])))
    t.add_row("[bold]kept[/bold]", f"[bold]{report['rows_out']:,}[/bold]", f"of {report['rows_in']:,} read")
    return t


def _progress_callback(progress, task):
    def cb(label: str, stage: str, i: int, total: int) -> None:
        progress.update(task, description=f"{stage} {label}", completed=i + (stage == "done"), total=total)

    return cb


# ------------------------------------------------------------------ commands
@command
def ingest(
    file: Annotated[Path, typer.Argument(help="interaction log: .csv .tsv .parquet .jsonl, MovieLens or RecBole .inter")],
    output: Annotated[Path, typer.Option("--output", "-o", help="dataset directory to write")],
    user: Annotated[str, typer.Option(help="column holding the user id")] = "user_id",
    item: Annotated[str, typer.Option(help="column holding the item id")] = "item_id",
    time: Annotated[str | None, typer.Option("--time", help="column holding the timestamp")] = None,
    event: Annotated[str | None, typer.Option(help="column holding the event type")] = None,
    value: Annotated[str | None, typer.Option(help="column holding a numeric value (rating)")] = None,
    format: Annotated[str | None, typer.Option(help="csv, tsv, parquet, jsonl, recbole, movielens")] = None,
    encoding: Annotated[
        str | None, typer.Option(help="text encoding of the file (and --items) when not UTF-8: latin-1, cp1252, utf-16…")
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option(help="field delimiter of a CSV log (and a CSV --items table) when not a comma: ';', '|'")
    ] = None,
    event_weight: Annotated[
        list[str] | None, typer.Option(help="NAME=WEIGHT for an event type (repeatable)")
    ] = None,
    event_alias: Annotated[
        list[str] | None, typer.Option(help="NAME=TYPE: the log's event name NAME counts as TYPE, one of view, "
                                       "click, favorite, cart, purchase, rating (repeatable; e.g. buy=purchase)")
    ] = None,
    allow_drops: Annotated[bool, typer.Option("--allow-drops", help="drop rows of unknown event types however many "
                                              "(by default more than 1% of rows fails the ingest)")] = False,
    rating_threshold: Annotated[float | None, typer.Option(help="keep rows with value ≥ this")] = None,
    min_value: Annotated[float | None, typer.Option(help="drop rows with value below this")] = None,
    max_value: Annotated[float | None, typer.Option(help="drop rows with value above this")] = None,
    min_user: Annotated[int, typer.Option(help="k-core: minimum events per user")] = 0,
    min_item: Annotated[int, typer.Option(help="k-core: minimum events per item")] = 0,
    strict: Annotated[bool, typer.Option(help="fail on the first malformed row instead of dropping it")] = False,
    items: Annotated[Path | None, typer.Option(help="item side table (e.g. titles) to attach")] = None,
    item_key: Annotated[str, typer.Option(help="id column of the --items table")] = "item_id",
    item_text: Annotated[list[str] | None, typer.Option(help="--items columns of item text, e.g. title,description "
                                                        "(read by the two-tower)")] = None,
    item_cat: Annotated[list[str] | None, typer.Option(help="--items columns with one category each, e.g. "
                                                       "brand,category")] = None,
    item_multi: Annotated[list[str] | None, typer.Option(help="--items columns with several values per cell, "
                                                         "split on --multi-sep, e.g. tags")] = None,
    multi_sep: Annotated[str, typer.Option(help="separator of the --item-multi values")] = "|",
    item_num: Annotated[list[str] | None, typer.Option(help="--items columns holding a number, e.g. price")] = None,
    pseudonymise_users: Annotated[bool, typer.Option("--pseudonymise-users", help="store each user id as its keyed "
                                                     "hash (HMAC-SHA256 with --key-file), never the raw id")] = False,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="the secret of --pseudonymise-users (mode 0600, "
                                                  "kept outside the data)")] = None,
    chunk_rows: Annotated[int | None, typer.Option("--chunk-rows", help="rows of a CSV/TSV/Parquet log read and "
                                                   "cleaned at a time (default 1,048,576; fewer: less memory)")] = None,
) -> None:
    """Read, clean and code an interaction log into a dataset directory.

    Every dropped row is counted by reason and reported.  CSV, TSV and
    Parquet logs are read a chunk at a time, so memory grows with the events
    kept, not with the file (about 55 MB per million events).  Example:

      zenrec ingest events.csv --user user_id --item product_id --time ts --event type -o data/
    """
    from pydantic import ValidationError

    from zenrec.data.dataset import Dataset
    from zenrec.data.readers import check_encoding, delimiter_of, guess_format
    from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS, CleaningConfig, ColumnMap

    check_encoding(encoding)  # an unknown name fails before anything is read
    if delimiter is not None:
        delimiter_of(format or guess_format(file), delimiter)
    if chunk_rows is not None and chunk_rows < 1:
        raise ConfigError(f"--chunk-rows must be a positive number of rows; got {chunk_rows}")
    pseudonym_key = None
    if pseudonymise_users or key_file is not None:
        from zenrec.store.erasure import read_key_file

        if not (pseudonymise_users and key_file is not None):
            raise ConfigError("--pseudonymise-users and --key-file go together: give both")
        pseudonym_key = read_key_file(key_file)  # a missing or loose key fails before anything is read
    item_columns = _item_columns(items, item_text, item_cat, item_multi, multi_sep, item_num)
    weights = dict(DEFAULT_EVENT_WEIGHTS)
    for k, v in _parse_params(event_weight).items():
        try:
            weights[k.lower()] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"--event-weight {k}= expects a number; got {v!r}") from None
    try:
        cleaning = CleaningConfig(
            event_weights=weights, event_aliases=_aliases(event_alias),
            max_unknown_event_share=1.0 if allow_drops else 0.01, rating_threshold=rating_threshold, min_value=min_value,
            max_value=max_value, min_user_interactions=min_user, min_item_interactions=min_item, strict=strict,
        )
    except ValidationError as exc:
        raise ConfigError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    columns = ColumnMap(user=user, item=item, timestamp=time, event=event, value=value)
    with err.status(f"reading and cleaning {file}"):
        ds = Dataset.from_file(file, columns, cleaning, format=format, encoding=encoding,  # type: ignore[arg-type]
                               chunk_rows=chunk_rows, delimiter=delimiter)
        if items is not None:
            # with declared features, the table's items without events join the catalogue (cold items)
            items_sep = delimiter if guess_format(items) == "csv" else None
            ds.with_item_file(items, item_key, item_columns, encoding=encoding, delimiter=items_sep)
        if pseudonym_key is not None:
            from zenrec.store.erasure import pseudonymise_users as pseudonymise

            ds = pseudonymise(ds, pseudonym_key)
        ds.save(output)
    out.print(_report_table(ds.report.to_dict()))
    for note in ds.report.notes:
        out.print(f"note: {note}", highlight=False, soft_wrap=True)
    inter = ds.interactions
    out.print(
        f"wrote [bold]{output}[/bold]: {len(inter):,} events, {inter.n_users:,} users, {inter.n_items:,} items"
        + (f", events {', '.join(inter.event_names)}" if inter.event_names else "")
    )
    if ds.item_columns:
        cold = int((inter.item_counts() == 0).sum())
        out.print(f"item features: {ds.item_columns.describe()}; {cold:,} cold items (in {items.name}, no events)",
                  highlight=False)


@command
def split(
    data: Annotated[Path, typer.Argument(help="dataset directory from `zenrec ingest`")],
    output: Annotated[Path, typer.Option("--output", "-o", help="directory for NAME.{train,valid,test}.inter")],
    protocol: Annotated[str, typer.Option(help="general (random 80/10/10 per user), temporal, sequential")] = "general",
    seed: Annotated[int, typer.Option(help="random seed")] = 2020,
    target_event: Annotated[str | None, typer.Option("--target-event", help=_TARGET_EVENT_HELP + " (recorded in "
                                                     "NAME.targets.json for `compare --split`)")] = None,
) -> None:
    """Export a protocol's split as RecBole atomic files, so peers train on the same rows.

    Rows carry their event type (an event:token column) when the dataset has event types.
    """
    from zenrec.data.splits import save_split, split_dataset

    ds = _load_dataset(data)
    s = split_dataset(ds, protocol, seed, target_events=target_event)  # type: ignore[arg-type]
    for p in save_split(s, ds, output):
        out.print(f"wrote {p}")


@command
def compare(
    data: Annotated[Path, typer.Argument(help="dataset directory from `zenrec ingest`")],
    models: Annotated[str, typer.Option(help="comma-separated registered models")] = "pop,itemknn,ease,als,lmf",
    protocol: Annotated[str, typer.Option(help="general, temporal or sequential")] = "general",
    ks: Annotated[str, typer.Option("--ks", "-k", help="cut-offs, e.g. 10,20")] = "10,20",
    sampled: Annotated[
        int | None, typer.Option(help="rank among N sampled negatives instead of all items (labelled)")
    ] = None,
    split_dir: Annotated[Path | None, typer.Option("--split", help="use split files from `zenrec split`")] = None,
    seed: Annotated[int, typer.Option(help="seed for the split and training")] = 2020,
    target_event: Annotated[str | None, typer.Option("--target-event", help=_TARGET_EVENT_HELP)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the leaderboard as JSON")] = None,
    part: Annotated[str, typer.Option(help="show test or valid metrics")] = "test",
    metrics: Annotated[
        str | None, typer.Option(help="columns to show, e.g. ndcg@10,recall@10,coverage@10 (all go to --json)")
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="MODEL.NAME=VALUE for one model, e.g. "
                                                    "sasrec.epochs=20 (repeatable)")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="also write a self-contained HTML report with "
                                                "tables and plots")] = None,
) -> None:
    """Fit several models on one split and print a full-ranking leaderboard.

    Training items (and validation items, on test) are masked; every item is ranked.
    A held-out item the user already had in that masked history is no target (it
    could never be hit), and a user left with no target is not evaluated; --json
    counts both.  --target-event purchase evaluates on purchases only.  The p
    column: a paired Wilcoxon test of each row against the best, user by user.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from zenrec.experiments.leaderboard import compare as run_compare
    from zenrec.models.base import TrainOptions

    names = _parse_list(models, "--models")
    specs = _model_specs(names, param)
    if report is not None:
        from zenrec.experiments.report import check_report

        check_report(report)  # now, not after the fits
    s = _load_split(data, protocol, seed, split_dir, target_event)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("starting", total=len(names))
        board = run_compare(s, specs, ks=_parse_ks(ks), options=TrainOptions(seed=seed, callback=_print_estimates),
                            sampled=sampled, progress=_progress_callback(progress, task),
                            side=_declared_side(data, split_dir, names))
    if part not in ("test", "valid"):
        raise ConfigError(f"--part must be test or valid; got {part!r}")
    keys = _parse_list(metrics, "--metrics") if metrics else None
    if keys:
        unknown = [x for x in keys if x not in board.metric_keys(part)]  # type: ignore[arg-type]
        if unknown:
            raise ConfigError(f"--metrics: no column {unknown[0]!r}; available: {', '.join(board.metric_keys(part))}")  # type: ignore[arg-type]
    out.print(board.to_rich_table(keys, part=part))  # type: ignore[arg-type]
    if json_out is not None:
        board.to_json(json_out)
        out.print(f"wrote {json_out}")
    if report is not None:
        from zenrec.experiments.report import write_report

        write_report(board, report, title=f"zenrec compare · {data.name}")
        out.print(f"wrote {report}")


@command
def tune(
    data: Annotated[Path, typer.Argument(help="dataset directory from `zenrec ingest`")],
    models: Annotated[str, typer.Option(help="comma-separated registered models")] = "itemknn,ease,als",
    trials: Annotated[int, typer.Option(help="trials per model (the same budget for every model)")] = 20,
    metric: Annotated[str, typer.Option(help="validation metric to maximise, NAME@K")] = "ndcg@10",
    protocol: Annotated[str, typer.Option(help="general, temporal or sequential")] = "general",
    split_dir: Annotated[Path | None, typer.Option("--split", help="use split files from `zenrec split`")] = None,
    seed: Annotated[int, typer.Option(help="seed for the split, sampler and training")] = 2020,
    timeout: Annotated[float | None, typer.Option(help="seconds per model at most")] = None,
    target_event: Annotated[str | None, typer.Option("--target-event", help=_TARGET_EVENT_HELP)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write best parameters and the test leaderboard")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="MODEL.NAME=VALUE held fixed for one "
                                                    "model, e.g. sasrec.epochs=20 (repeatable)")] = None,
    save_best: Annotated[Path | None, typer.Option("--save-best", help="refit the model that won on validation on "
                                                   "every event, as `zenrec train` would, and save it here")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="also write a self-contained HTML report with "
                                                "tables and plots")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="share each model's optuna study with other "
                                                "processes or machines through this database (an SQLAlchemy URL: "
                                                "sqlite:///tune.db, postgresql+psycopg://USER@HOST/DB); --trials is "
                                                "then the study's total")] = None,
    study_name: Annotated[str | None, typer.Option("--study-name", help="studies NAME:MODEL in --storage (default: "
                                                   "zenrec:PROTOCOL:SPLIT-HASH, the same on every machine for the "
                                                   "same data, protocol, --seed and --target-event)")] = None,
    collect: Annotated[bool, typer.Option("--collect", help="run no trial: write the results of the finished "
                                          "trials in --storage")] = False,
) -> None:
    """Tune each model with optuna on the validation split, then refit and test the best.

    With --save-best the winner (by the validation metric, never by test) is
    refitted on the whole dataset and saved, with the `zenrec train` command
    that reproduces it; `zenrec train --params-from tune.json` reads the
    parameters of a --json file.

    With --storage, every process started with the same command shares each
    model's study: they split its --trials between them, each waits for the
    others' last trials, and each prints the same results (--collect prints
    them again later without tuning).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from zenrec._io import write_json
    from zenrec.experiments.tune import collect as collect_results
    from zenrec.experiments.tune import tune as run_tune
    from zenrec.experiments.tune import tuned_leaderboard
    from zenrec.models.base import TrainOptions

    names = _parse_list(models, "--models")
    specs = _model_specs(names, param)
    if trials <= 0:
        raise ConfigError(f"--trials must be a positive integer; got {trials}")
    if storage is None and (collect or study_name is not None):
        raise ConfigError(f"{'--collect' if collect else '--study-name'} reads studies in a shared database; "
                          "give it with --storage URL")
    if study_name is not None and not study_name.strip():
        raise ConfigError("--study-name must not be empty")
    shared = None
    if storage is not None:
        from zenrec.experiments.studies import open_storage

        shared = open_storage(storage, flag="--storage")  # a bad URL fails now, not after loading the data
    if save_best is not None:
        check_dir_target(save_best)  # a bad path fails now, not after the tuning
    if report is not None:
        from zenrec.experiments.report import check_report

        check_report(report)
    s = _load_split(data, protocol, seed, split_dir, target_event)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task("tuning", total=trials)

        def cb(label: str, stage: str, i: int, total: int) -> None:
            progress.update(task, description=f"tuning {label}", completed=i + 1, total=total)

        side = _declared_side(data, split_dir, names)
        if collect:
            results = collect_results(s, specs, shared, study_name=study_name, metric=metric, seed=seed,
                                      options=TrainOptions(seed=seed))
        else:
            results = run_tune(s, specs, n_trials=trials, metric=metric, seed=seed, timeout=timeout,
                               options=TrainOptions(seed=seed), progress=cb, side=side, storage=shared,
                               study_name=study_name)
    if shared is not None:
        for r in results.values():
            workers = r.trials["worker"].value_counts()
            out.print(f"study {r.study}: {r.n_trials} finished trials, by "
                      + ", ".join(f"{w} ({n})" for w, n in workers.items()), highlight=False, soft_wrap=True)
    budget = f"{trials} trials each" if not collect else "finished trials"
    t = Table(title=f"best parameters on validation ({metric}, {budget})")
    for col in ("model", "defaults", "tuned", "parameters"):
        t.add_column(col)
    for label, r in results.items():
        t.add_row(label, f"{r.default_value:.4f}", f"{r.best_value:.4f}",
                  ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in r.best_params.items() if k != "on_unknown_user"))
    out.print(t)
    board = tuned_leaderboard(s, results, options=TrainOptions(seed=seed), side=side)
    out.print(board.to_rich_table())
    if json_out is not None:
        write_json(json_out, {"tuning": {k: r.to_dict() for k, r in results.items()}, "leaderboard": board.to_dict()})
        out.print(f"wrote {json_out}")
    if report is not None:
        from zenrec.experiments.report import write_report

        write_report(board, report, title=f"zenrec tune · {data.name}", tuning=results)
        out.print(f"wrote {report}")
    if save_best is not None:
        from zenrec.experiments.best import best_result, train_command
        from zenrec.experiments.best import save_best as run_save_best

        label, best = best_result(results)
        with err.status(f"refitting {label} on every event of {data}"):
            run_save_best(_load_dataset(data), results, save_best, TrainOptions(seed=seed, progress=True),
                          data_ref=data)
        out.print(f"wrote [bold]{save_best}[/bold]: {label}, best on validation ({metric} {best.best_value:.4f}), "
                  "refitted on every event; reproduce it with:")
        out.print(train_command(data, best.model, best.best_params, save_best, seed), highlight=False, markup=False,
                  soft_wrap=True)


@command
def auto(
    data: Annotated[Path, typer.Argument(help="dataset directory from `zenrec ingest`")],
    output: Annotated[Path, typer.Option("--output", "-o", help="model directory to write (the winner)")],
    budget: Annotated[float, typer.Option(help="seconds of tuning in all (a trial in progress finishes)")] = 600.0,
    protocol: Annotated[str, typer.Option(help="general, temporal or sequential")] = "general",
    metric: Annotated[str, typer.Option(help="validation metric to maximise, NAME@K")] = "ndcg@10",
    trials: Annotated[int, typer.Option(help="trials per model at most")] = 20,
    models: Annotated[str | None, typer.Option(help="candidates instead of the protocol's")] = None,
    seed: Annotated[int, typer.Option(help="seed for the split, sampler and training")] = 2020,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write every model's tuning as JSON")] = None,
) -> None:
    """Pick the best model for the protocol within a time budget, tuned on validation, and save it.

      zenrec auto data/ --budget 300 -o models/best
    """
    from zenrec._io import write_json
    from zenrec.experiments.auto import auto as run_auto
    from zenrec.experiments.best import train_command
    from zenrec.models.base import TrainOptions

    if trials <= 0:
        raise ConfigError(f"--trials must be a positive integer; got {trials}")
    if not budget > 0:
        raise ConfigError(f"--budget must be a positive number of seconds; got {budget}")
    check_dir_target(output)
    names = _parse_list(models, "--models") if models else None
    ds = _load_dataset(data)
    with err.status(f"tuning models for {budget:.0f} s") as status:
        def cb(label: str, stage: str, i: int, total: int) -> None:
            status.update(f"tuning {label}: trial {i + 1}")

        res = run_auto(ds, output, protocol, budget, metric, trials, seed, names, TrainOptions(seed=seed), cb,
                       data_ref=data)
    t = Table(title=f"validation {metric} after tuning ({res.seconds:.0f} s)")
    for col in ("model", "trials", "defaults", "tuned"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for label, r in res.results.items():
        mark = " ←" if label == res.best else ""
        t.add_row(label + mark, str(r.n_trials), f"{r.default_value:.4f}", f"{r.best_value:.4f}")
    out.print(t)
    for name, why in res.skipped.items():
        out.print(f"note: skipped {name}: {why}", highlight=False)
    best = res.results[res.best]
    out.print(f"wrote [bold]{output}[/bold]: {res.best}, refitted on every event; reproduce it with:")
    out.print(train_command(data, best.model, best.best_params, output, seed), highlight=False, markup=False,
              soft_wrap=True)
    if json_out is not None:
        write_json(json_out, {"tuning": {k: r.to_dict() for k, r in res.results.items()}, "best": res.best,
                              "skipped": res.skipped})
        out.print(f"wrote {json_out}")


@command
def train(
    data: Annotated[Path, typer.Argument(help="dataset directory from `zenrec ingest`")],
    output: Annotated[Path, typer.Option("--output", "-o", help="model directory to write")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="registered model name (optional with "
                                              "--params-from)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE hyper-parameter (repeatable)")] = None,
    params_from: Annotated[Path | None, typer.Option("--params-from", help="start from the parameters in a "
                                                     "`zenrec tune --json` file (the best on validation, or "
                                                     "--model's) or a model directory; --param overrides")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 2020,
    validation: Annotated[bool, typer.Option("--validation/--no-validation", help="models that early-stop hold "
                                             "out a validation slice and stop on it (default); without it they "
                                             "train all --param epochs=N on everything")] = True,
    nproc: Annotated[int, typer.Option("--nproc", help="train a PyTorch model on N processes of this machine "
                                       "(DistributedDataParallel, started by torchrun; batch_size is per process, "
                                       "one thread each)")] = 1,
) -> None:
    """Fit a model on every interaction of a dataset and save it with its vocabularies.

    The two-tower reads the item features declared at ingest (--item-text...);
    other models ignore them.

    Models that early-stop (lmf, sasrec, gru4rec, bert4rec, twotower,
    multitask) hold out a validation slice: each user's last event for
    sequence models, a random 10% of each user's events otherwise.  They stop
    after `patience` epochs without a gain in validation NDCG@10 and keep the
    best epoch's weights (no refit on everything: the saved weights are the
    validated ones, and training is not run twice).  The saved model still
    scores from, and masks, every event.  --no-validation trains every epoch
    (bound them with --param epochs=N).  Progress goes to stderr: a bar on a
    terminal, plain lines otherwise.

      zenrec train data/ --model ease --param reg=500 -o models/ease
      zenrec train data/ --params-from tune.json -o models/best
      zenrec train data/ --model sasrec --nproc 2 -o models/sasrec

    Under torchrun (--nproc, or torchrun … -m zenrec.cli train … on several
    machines) process 0 validates, reports and writes the model directory.
    """
    from contextlib import nullcontext

    from zenrec.cli.launch import check_processes, launch_train, train_args
    from zenrec.models.base import TrainOptions
    from zenrec.models.bundle import train_bundle
    from zenrec.models.registry import create_model, get_model_class
    from zenrec.train.distributed import is_main_process

    main = is_main_process()  # under torchrun only process 0 prints and writes
    params: dict[str, Any] = {}
    if params_from is not None:
        from zenrec.experiments.best import params_from as read_params

        model, params = read_params(params_from, model)
        if main and nproc <= 1:
            out.print(f"parameters of {model} from {params_from}", highlight=False)
    if model is None:
        raise ConfigError("give --model NAME (or --params-from a tuning result)")
    model_cls = get_model_class(model)  # unknown names fail before loading data
    uses_side = model_cls.uses_side
    params.update(_parse_params(param))
    check_dir_target(output)
    if check_processes(model, model_cls, params, nproc):
        if not data.is_dir():
            _load_dataset(data)  # a missing dataset fails here, not in every process
        launch_train(nproc, train_args(data, output, model, param, params_from, seed, validation))
        return
    if model_cls.early_stops and not validation and main:
        epochs = create_model(model, **params).config.epochs  # type: ignore[attr-defined]
        err.print(f"note: {model} trains without validation: all {epochs} epochs, no early stopping "
                  "(bound them with --param epochs=N)", highlight=False)
    ds = _load_dataset(data)
    options = TrainOptions(seed=seed, progress=True, validation=validation, callback=_print_estimates)
    # a model that early-stops draws its own progress, step by step; the others get a spinner
    busy = nullcontext() if model_cls.early_stops else err.status(f"fitting {model} on {len(ds.interactions):,} events")
    with busy:
        try:
            bundle = train_bundle(ds, model, params, options)
        except ImportError as exc:  # an optional extra, e.g. text_encoder=minilm without zenrec[text]
            raise ConfigError(str(exc)) from None
        if not main:
            return  # process 0 writes the model directory and says how it trained
        bundle.save(output, metadata={"dataset": ds.name, "dataset_fingerprint": ds.fingerprint})
    if uses_side and ds.item_columns:
        out.print(f"item features: {ds.item_columns.describe()}", highlight=False)
    if bundle.model.training_:
        out.print(_training_summary(model, bundle.model.training_), highlight=False, soft_wrap=True)
    out.print(f"wrote [bold]{output}[/bold]: {bundle.model!r}, fitted in {bundle.model.fit_seconds_:.2f}s")


def _print_estimates(event: Any) -> None:
    """A training callback that prints the cost estimate of a large closed-form fit on stderr."""
    if event.kind == "estimate":
        err.print(event.message, highlight=False, soft_wrap=True)


def _training_summary(model: str, t: dict[str, Any]) -> str:
    """One line on how a model that early-stops trained (its ``training_``)."""
    line = f"{model}: trained {t['epochs']} of at most {t['max_epochs']} epochs"
    if t.get("processes"):
        line += f" on {t['processes']} processes (effective batch {t['effective_batch_size']})"
    if t.get("best_epoch") is not None:
        line += (f", {'stopped early; ' if t.get('stopped_early') else ''}best validation NDCG@10 "
                 f"{t['valid_ndcg@10']:.4f} at epoch {t['best_epoch']} (its weights are kept)")
    line += f"; validation: {t.get('validation')}"
    if isinstance(t.get("privacy"), dict):
        p = t["privacy"]
        line += (f"\ndifferential privacy: ε = {p['epsilon']:.3f} spent at δ = {p['delta']:g} (target "
                 f"{p.get('target_epsilon')}, noise multiplier {p['noise_multiplier']:.3f}, clipping norm "
                 f"{p['max_grad_norm']:g}, {p['epochs']} epochs); unit: {p.get('unit', 'one training example (event level)')}")
    return line


@command
def recommend(
    model_dir: Annotated[Path, typer.Argument(help="model directory from `zenrec train`")],
    user: Annotated[str | None, typer.Option(help="one raw user id")] = None,
    users: Annotated[Path | None, typer.Option(help="user ids: a .txt file with one per line, or a CSV (column "
                                               "user_id, or the first column)")] = None,
    k: Annotated[int, typer.Option("-k", help="list length")] = 10,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write recommendations as CSV")] = None,
    include_seen: Annotated[bool, typer.Option(help="allow items the user already interacted with")] = False,
    reasons: Annotated[bool, typer.Option("--reasons", help="explain each item by the user's items behind it "
                                          "(a 'because' column; a JSON 'reasons' column in the CSV)")] = False,
) -> None:
    """Top-k items for one user or a list of users: a table, or a CSV with -o."""
    from zenrec._io import atomic_file
    from zenrec.models.bundle import ModelBundle
    from zenrec.retrieval.base import check_k

    if (user is None) == (users is None):
        raise ConfigError("give exactly one of --user ID or --users FILE")
    check_k(k, "-k")
    bundle = ModelBundle.load(model_dir)
    if user is not None:
        raw = [_coerce_id(user, bundle)]
    else:
        raw = _user_list(users, bundle)  # type: ignore[arg-type]
    why: list[Any] = []
    if reasons:
        from zenrec.models.query import Query, Recommendations

        lists = bundle.recommend_batch([Query(user=_plain_id(u), k=k, exclude_seen=not include_seen, reasons=True)
                                        for u in raw])
        recs = Recommendations.frame(lists)
        why = [r for lst in lists for r in (lst.reasons or [[] for _ in range(len(lst))])]
        recs["reasons"] = [json.dumps(r) for r in why]
    else:
        recs = bundle.recommend_users(raw, k=k, exclude_seen=not include_seen)
    if output is not None:
        with atomic_file(output) as tmp:
            recs.to_csv(tmp, index=False)
        out.print(f"wrote {len(recs):,} rows for {len(raw):,} users to {output}")
        return
    many = users is not None  # a list of users: a user column, and each unknown user marked on its rows
    if many:
        n_unknown = int(recs.loc[recs["fallback"] != "", "user_id"].nunique()) if len(recs) else 0
        title = f"top-{k} for {len(raw):,} users" + (f" ({n_unknown:,} unknown: popular items)" if n_unknown else "")
    else:
        fallback = bool(len(recs)) and recs["fallback"].iloc[0] != ""
        title = f"top-{k} for user {user}" + (" (unknown user: popular items)" if fallback else "")
    t = Table(title=title)
    cols = (("user",) if many else ()) + ("rank", "item", "title", "score") + (("because",) if reasons else ())
    for col in cols:
        t.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for j, r in enumerate(recs.itertuples()):
        row = [str(r.rank), str(r.item_id), str(getattr(r, "title", "")), f"{r.score:.4f}"]
        if many:
            row.insert(0, f"{r.user_id}" + (" (unknown)" if r.fallback else ""))
        if reasons:
            row.append(", ".join(str(x.get("title") or x["item"]) for x in why[j]) or "-")
        t.add_row(*row)
    out.print(t)


def _plain_id(x: Any) -> Any:
    return x.item() if hasattr(x, "item") and not isinstance(x, (str, bytes)) else x


@command
def explain(
    model_dir: Annotated[Path, typer.Argument(help="model directory from `zenrec train`")],
    user: Annotated[str, typer.Option(help="one raw user id (known to the model)")],
    item: Annotated[list[str], typer.Option(help="raw item id to explain (repeat for several)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the explanation as JSON")] = False,
    top: Annotated[int, typer.Option(help="contributions shown in the table")] = 10,
) -> None:
    """Why the model scores ITEM as it does for USER: a sentence and the contributions behind the score."""
    from rich.markup import escape

    from zenrec.errors import UnknownIdError
    from zenrec.models.bundle import ModelBundle
    from zenrec.models.explain import METHODS
    from zenrec.models.query import Query

    if top < 1:
        raise ConfigError(f"--top must be at least 1; got {top}")
    bundle = ModelBundle.load(model_dir)
    uid = _coerce_id(user, bundle)
    if bundle.user_index(uid) < 0:
        raise UnknownIdError(f"unknown user {user!r}: the model does not know it")
    items = [int(x) if bundle.items.is_integer and x.lstrip("-").isdigit() else x for x in item]
    exps = bundle.explain(Query(user=uid), items)
    if as_json:
        body = [e.to_dict() for e in exps]
        typer.echo(json.dumps(body[0] if len(body) == 1 else body, ensure_ascii=False))
        return
    for e in exps:
        out.print(f"[bold]{escape(str(e.title or e.item))}[/bold] for user {escape(user)}: {escape(e.sentence)}",
                  highlight=False)
        out.print(f"score {e.score:.4f} = baseline {e.baseline:.4f} + contributions {e.total:.4f} + residual "
                  f"{e.residual:.4f}" if e.additive else f"score {e.score:.4f} (the weights are not parts of it)",
                  highlight=False, markup=False)
        t = Table()
        for col in ("contributor", "title", "weight", "share"):
            t.add_column(col, justify="right" if col in ("weight", "share") else "left")
        total = e.total if e.additive and e.total else None
        for c in e.contributions[:top]:
            t.add_row(str(c.item if c.item is not None else c.name), c.title or "", f"{c.weight:.4f}",
                      "" if total is None else f"{c.weight / total:.1%}")
        out.print(t)
        out.print(f"method: {e.method} ({METHODS.get(e.method, '')})", highlight=False, markup=False)
        if e.note:
            out.print(f"note: {e.note}", highlight=False, markup=False)


def _user_list(path: Path, bundle: Any) -> Any:
    """The ids of ``--users``: a ``.txt`` file is a plain list (one id per line, no header); any other
    table is read with its header (column ``user_id``, or the first column)."""
    from zenrec.data.readers import read_table

    if path.suffix.lower() == ".txt":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot read a list of user ids ({exc})") from None
        ids = [_coerce_id(x.strip(), bundle) for x in lines if x.strip()]
        if not ids:
            raise DataError(f"{path}: no user ids (expected one id per line)")
        return ids
    df = read_table(path)
    col = "user_id" if "user_id" in df.columns else df.columns[0]
    return df[col].to_numpy()


def _coerce_id(raw: str, bundle) -> Any:
    if bundle.users.is_integer:
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


@command
def demo(
    output: Annotated[Path, typer.Option("--out", help="where to write the dataset, leaderboard and model")] = Path("out/demo"),
    models: Annotated[str, typer.Option(help="models to compare")] = "pop,itemknn,ease,als,lmf",
    user: Annotated[str, typer.Option(help="sample user to recommend for")] = "196",
) -> None:
    """The whole loop on bundled MovieLens-100K: ingest, compare, train, recommend."""
    from zenrec.datasets import load_ml100k

    out.rule("[bold]zenrec demo[/bold] · MovieLens-100K (GroupLens terms, see datasets/ml-100k/LICENSE.md)")
    with err.status("ingesting bundled ml-100k"):
        ds = load_ml100k()
        ds.save(output / "data")
    out.print(f"1. ingested {len(ds.interactions):,} ratings by {len(ds.users):,} users on {len(ds.items):,} "
              f"movies → {output / 'data'}")
    out.print("2. leaderboard, general protocol (per-user random 80/10/10, full ranking, train+valid masked):")
    compare(output / "data", models=models, protocol="general", ks="10,20", sampled=None, split_dir=None,
            seed=2020, json_out=output / "leaderboard.json", part="test", metrics=None)
    out.print("3. training EASE on all ratings:")
    train(output / "data", model="ease", output=output / "model-ease", param=None, seed=2020)
    from zenrec.models.bundle import ModelBundle

    bundle = ModelBundle.load(output / "model-ease")
    hist = bundle.history(_coerce_id(user, bundle))
    out.print(f"4. user {user} rated {len(hist)} movies, e.g. " + "; ".join(hist["title"].head(5)))
    recommend(output / "model-ease", user=user, users=None, k=10, output=None, include_seen=False)


@command
def serve(
    model_dir: Annotated[Path, typer.Argument(help="model directory from `zenrec train`, or a model registry root")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    store: Annotated[str | None, typer.Option("--store", help="event store URL (default: sqlite:///MODEL_DIR/events.db)")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="key for POST /events (default: $ZENREC_API_KEY)")] = None,
    keys_for_reads: Annotated[bool, typer.Option("--keys-for-reads", help="require the API key on reads too")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="dataset directory whose item table enables attribute filters")] = None,
    retrieval: Annotated[str, typer.Option(help="how known users of a vector model are served: auto (the model "
                                                "up to 50,000 items, faiss HNSW above), exact, faiss, hnsw or ivf")] = "auto",
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request (costs CPU under load)")] = False,
    score_cache_mb: Annotated[float, typer.Option("--score-cache-mb", help="memory for users' score rows, reused "
                                                  "until their history changes (0: score every request)")] = 64.0,
    durability: Annotated[str, typer.Option(help="what an acknowledged event survives: fsync (anything: each commit "
                                            "waits for the disk) or os (the server being killed; a power loss may "
                                            "lose the last second)")] = "fsync",
    max_event_ahead: Annotated[float, typer.Option("--max-event-ahead", help="seconds an event's timestamp may lie "
                                                   "after the server's clock")] = 86_400.0,
    max_event_age: Annotated[float | None, typer.Option("--max-event-age", help="seconds an event's timestamp may "
                                                        "lie before the server's clock (default: any time since "
                                                        "1970)")] = None,
    served_log: Annotated[bool, typer.Option("--served-log/--no-served-log", help="log every served list in the "
                                             "store's served_lists table (for `zenrec report online`)")] = True,
    served_max_rows: Annotated[int, typer.Option("--served-max-rows", help="served lists the log keeps, the newest "
                                                 "(0: no row bound)")] = 1_000_000,
    served_max_age_days: Annotated[float, typer.Option("--served-max-age-days", help="days a served list is kept "
                                                       "(0: no age bound)")] = 30.0,
    served_prune_seconds: Annotated[float, typer.Option("--served-prune-seconds", help="how often the log is cut "
                                                        "back to its bounds")] = 60.0,
    log_anonymous_reads: Annotated[bool, typer.Option("--log-anonymous-reads/--no-log-anonymous-reads",
                                                      help="log the lists of reads that came without the API key "
                                                      "(off: only reads with the key are logged; with no key set, "
                                                      "none)")] = True,
    log_session_lists: Annotated[bool, typer.Option("--log-session-lists/--no-log-session-lists",
                                                    help="log the lists of POST /recommendations (anonymous "
                                                    "sessions)")] = True,
    leaderboard: Annotated[Path | None, typer.Option("--leaderboard", help="a leaderboard JSON file (`zenrec compare "
                                                     "--json`) for the web page's model view and GET /model")] = None,
    sync_seconds: Annotated[float, typer.Option("--sync-seconds", help="how often the server reads events and "
                                                "erasures that other servers on the same store took (0: never)")] = 0.1,
    sync_notify: Annotated[bool, typer.Option("--sync-notify/--no-sync-notify", help="on PostgreSQL, also read them "
                                              "as soon as a commit notifies (LISTEN/NOTIFY)")] = True,
    reuse_port: Annotated[bool, typer.Option("--reuse-port", help="share --port with other `zenrec serve` "
                                             "processes started with this flag (SO_REUSEPORT, Linux): the kernel "
                                             "spreads connections over them, one core each")] = False,
) -> None:
    """Serve Top-N over HTTP with real-time events (FastAPI + uvicorn; OpenAPI at /docs).

      zenrec serve models/ease --port 8000
    """
    import uvicorn

    from zenrec.serve.app import create_app

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535; got {port}")
    for name, value in (("--served-max-rows", served_max_rows), ("--served-max-age-days", served_max_age_days),
                        ("--served-prune-seconds", served_prune_seconds)):
        if not 0 <= value < float("inf"):
            raise ConfigError(f"{name} must be a number >= 0; got {value}")
    item_table = None
    if data is not None:
        from zenrec.models.bundle import ModelBundle

        ds = _load_dataset(data)
        if ds.item_table is None:
            raise ConfigError(f"{data}: the dataset has no item table to filter on")
        # a registry's promoted version is checked for the item count when it loads
        if (model_dir / "manifest.json").is_file() and ModelBundle.load(model_dir).items != ds.items:
            raise ConfigError(f"{data}: its items are not the model's (train the model on this dataset)")
        item_table = ds.item_table
    app_ = create_app(model_dir, store_url=store, api_key=api_key, require_key_for_reads=keys_for_reads,
                      item_table=item_table, retrieval=retrieval, score_cache_mb=score_cache_mb, durability=durability,
                      max_event_ahead=max_event_ahead, max_event_age=max_event_age, log_lists=served_log,
                      log_sessions=log_session_lists, log_anonymous_reads=log_anonymous_reads,
                      served_max_rows=served_max_rows or None,
                      served_max_age_s=served_max_age_days * 86_400.0 if served_max_age_days else None,
                      served_prune_s=served_prune_seconds, leaderboard=leaderboard, sync_seconds=sync_seconds,
                      sync_notify=sync_notify)
    out.print(f"serving {model_dir} at http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs; Ctrl-C stops)")
    out.print(f"web page: http://{host}:{port}/")
    sockets = [_shared_socket(host, port)] if reuse_port else None
    try:
        uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level="info", access_log=access_log)).run(
            sockets=sockets)
    except SystemExit:  # uvicorn's exit on a failed start (a port in use, a model it cannot serve)
        if getattr(app_.state, "startup_error", None) is not None:  # uvicorn logged its one line
            raise typer.Exit(2) from None
        raise


def _shared_socket(host: str, port: int) -> Any:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT``, so that several servers share the port."""
    import socket

    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--reuse-port needs SO_REUSEPORT (Linux, BSD, macOS); run one server per port instead")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--reuse-port: cannot bind {host}:{port} ({exc.strerror or exc}); a server started "
                          "without --reuse-port may hold it") from None
    return sock


EXIT_REJECTED = 3


@command
def retrain(
    registry: Annotated[Path, typer.Argument(help="model registry root (versions/, CURRENT.json, events.db)")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="registered model name (default: the served "
                                              "version's)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE hyper-parameter, changing "
                                                    "the served version's (repeatable)")] = None,
    default_params: Annotated[bool, typer.Option("--default-params", help="start from the model's defaults, not "
                                                 "the served version's parameters")] = False,
    base: Annotated[Path | None, typer.Option("--base", help="dataset directory from `zenrec ingest`, read before "
                                                           "the stored events (full mode)")] = None,
    store: Annotated[str | None, typer.Option("--store", help="event store URL (default: the registry's events.db)")] = None,
    mode: Annotated[str, typer.Option(help="full (base + every stored event) or incremental (the current version's "
                                           "training log + the events stored after it)")] = "full",
    window_days: Annotated[float | None, typer.Option("--window-days", help="evaluate on the last D days of events "
                                                      "(default: the events the current version was not trained on)")] = None,
    metric: Annotated[str, typer.Option(help="gate metric, NAME@K")] = "ndcg@10",
    tolerance: Annotated[float, typer.Option(help="promote when candidate >= current - tolerance")] = 0.0,
    no_promote: Annotated[bool, typer.Option("--no-promote", help="register a passing version without promoting it")] = False,
    fail_if_rejected: Annotated[bool, typer.Option("--fail-if-rejected", help="exit 3 when the candidate is rejected "
                                                   "(for CI)")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the report as JSON")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 2020,
) -> None:
    """Train a candidate on the registry's events, judge it against the served version, promote if not worse.

    The candidate is evaluated on the events the served version has not seen
    (or the last --window-days), then refitted on all data and promoted when
    its metric is at least the current one's minus --tolerance.  A rejected
    candidate is registered for inspection; the served version stays.  Exit
    code 0 either way (3 with --fail-if-rejected).

      zenrec retrain registry/ --model ease --param reg=500 --base data/

    By default the model and its parameters are the served version's (so a
    model saved by `zenrec tune --save-best` keeps its tuned parameters);
    --param changes single ones, --default-params starts from the defaults.
    """
    from zenrec._io import write_json
    from zenrec.models.registry import get_model_class
    from zenrec.retrain import retrain as run_retrain

    if model is not None:
        get_model_class(model)  # unknown names fail before any data is read
    if window_days is not None and not window_days > 0:
        raise ConfigError(f"--window-days must be a positive number of days; got {window_days}")
    with err.status(f"retraining {model or 'the served model'} ({mode}) from {registry}"):
        report = run_retrain(registry, model, _parse_params(param), base=base, store_url=store, mode=mode,
                             window=None if window_days is None else window_days * 86400.0, metric=metric,
                             tolerance=tolerance, seed=seed, promote=not no_promote,
                             reuse_params=not default_params)
    model = report.model
    if report.candidate or report.current:
        t = Table(title=f"retrain {model} ({mode}): gate on {report.metric}")
        t.add_column("metric")
        t.add_column(f"candidate ({model})", justify="right")
        t.add_column(f"current ({report.current_version})", justify="right")
        for key in dict.fromkeys([*report.candidate, *report.current]):
            c, v = report.candidate.get(key), report.current.get(key)
            t.add_row(key, "-" if c is None else f"{c:.4f}", "-" if v is None else f"{v:.4f}")
        out.print(t)
        w = report.window
        out.print(f"window ({w.get('description')}): {w.get('events', 0):,} events by {w.get('users', 0):,} users, "
                  f"{w.get('evaluated_users', 0):,} with new items", highlight=False)
        out.print(f"scoring: candidate from {report.scoring.get('candidate')}, current from "
                  f"{report.scoring.get('current')}", highlight=False)
    style = {"promoted": "bold green", "rejected": "bold red"}.get(report.decision, "bold yellow")
    registered = f"; registered {report.version} ({report.registered})" if report.version else ""
    out.print(f"[{style}]{report.decision.replace('_', ' ')}[/{style}]{registered}: {report.reason}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"served version: {report.served_version or 'none'}")
    if json_out is not None:
        write_json(json_out, report.to_dict())
        out.print(f"wrote {json_out}")
    if fail_if_rejected and report.decision == "rejected":
        raise typer.Exit(EXIT_REJECTED)


@command
def forget(
    user: Annotated[str, typer.Argument(help="the raw user id to erase")],
    registry: Annotated[Path, typer.Option("--registry", "-r", help="model registry root (or a served model "
                                           "directory) to erase the user from")],
    store: Annotated[str | None, typer.Option("--store", help="event store URL (default: the registry's events.db)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the counts as JSON (no raw id)")] = None,
) -> None:
    """Erase a user: their events and served lists in the store, their rows in every version's files and
    training log; their keyed hash joins the tombstones, so no later retrain sees them.

      zenrec forget user-42 --registry registry/

    Idempotent: running it again (e.g. after a crash midway) completes the erasure; a user never seen gives
    zero counts.  The key of the hash is ZENREC_ERASURE_KEY, else REGISTRY/erasure/erasure.key (created 0600).
    A running server keeps the user's state in memory until it is restarted: use DELETE /users/{id} there.
    """
    from zenrec._io import write_json
    from zenrec.data.ids import normalize_id
    from zenrec.retrain.erasure import forget as run_forget

    try:
        user = normalize_id(user)
    except ValueError as exc:
        raise ConfigError(f"USER {exc}") from None
    report = run_forget(registry, user, store)
    n = len(report.versions)
    out.print(f"forgot user {report.user_hash[:16]}…: {report.events:,} events, {report.served_lists:,} served "
              f"lists, {report.training_log_rows:,} training-log rows, {n} version{'s' * (n != 1)} rewritten; "
              f"audit: {registry / 'erasure' / 'audit.jsonl'}", highlight=False, soft_wrap=True)
    if json_out is not None:
        write_json(json_out, {"user_hash": report.user_hash, **report.counts()})


from zenrec.cli.report import report_app  # noqa: E402 - the sub-commands use this module's console

app.add_typer(report_app, name="report")
from zenrec.cli.registry import registry_app  # noqa: E402

app.add_typer(registry_app, name="registry")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # e.g. `zenrec … | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
