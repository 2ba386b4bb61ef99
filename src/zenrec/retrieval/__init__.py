"""Top-k retrieval over an item catalogue, with filters that never cost results.

* :mod:`~zenrec.retrieval.topk` — the top-k kernel on score blocks;
* :mod:`~zenrec.retrieval.base` — the :class:`Retriever` interface, filters, :func:`check_k`;
* :mod:`~zenrec.retrieval.score` — :class:`ScoreRetriever` and :func:`filtered_topk`, the one filtered top-k;
* :mod:`~zenrec.retrieval.exact` — :class:`ExactRetriever` (``q·V + b``);
* :mod:`~zenrec.retrieval.faiss` — :class:`FaissRetriever` (HNSW / IVF);
* :mod:`~zenrec.retrieval.filters` — the attribute-filter language;
* :mod:`~zenrec.retrieval.factory` — :func:`make_retriever`, :func:`load_retriever`;
* :mod:`~zenrec.retrieval.saved` — :func:`saved_retriever`, an index kept (memory-mapped) beside its model.
"""

from zenrec.retrieval.base import RETRIEVER_FORMAT, Retriever, check_k
from zenrec.retrieval.exact import ExactRetriever
from zenrec.retrieval.factory import load_retriever, make_retriever
from zenrec.retrieval.faiss import FaissRetriever
from zenrec.retrieval.filters import attribute_filter
from zenrec.retrieval.saved import saved_retriever
from zenrec.retrieval.score import ScoreRetriever, filtered_topk
from zenrec.retrieval.topk import mask_rows, topk

__all__ = [
    "RETRIEVER_FORMAT",
    "ExactRetriever",
    "FaissRetriever",
    "Retriever",
    "ScoreRetriever",
    "attribute_filter",
    "check_k",
    "filtered_topk",
    "load_retriever",
    "make_retriever",
    "mask_rows",
    "saved_retriever",
    "topk",
]
