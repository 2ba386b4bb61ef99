"""Data layer: readers, cleaning, vocabularies, interactions, splits, bundled data."""

from zenrec.data.clean import CleaningReport, clean_events
from zenrec.data.dataset import Dataset
from zenrec.data.interactions import Interactions
from zenrec.data.items import ItemColumns
from zenrec.data.readers import read_movielens, read_recbole, read_table
from zenrec.data.schema import DEFAULT_EVENT_WEIGHTS, CleaningConfig, ColumnMap
from zenrec.data.splits import (
    Split,
    leave_last_out,
    load_split,
    load_split_files,
    random_split,
    save_split,
    split_dataset,
    temporal_split,
)
from zenrec.data.vocab import Vocabulary

__all__ = [
    "CleaningConfig",
    "CleaningReport",
    "ColumnMap",
    "DEFAULT_EVENT_WEIGHTS",
    "Dataset",
    "Interactions",
    "ItemColumns",
    "Split",
    "Vocabulary",
    "clean_events",
    "leave_last_out",
    "load_split",
    "load_split_files",
    "random_split",
    "read_movielens",
    "read_recbole",
    "read_table",
    "save_split",
    "split_dataset",
    "temporal_split",
]
