"""Side features: item tables as typed arrays, item text as vectors or tokens.

``import zenrec.features`` is light: the sentence encoder loads
``sentence-transformers`` only when it first encodes a text.
"""

from zenrec.features.side import ItemFeatures, MultiHot, Side, UserFeatures
from zenrec.features.text import SentenceEncoder, TokenVocabulary, default_cache_dir, tokenize

__all__ = [
    "ItemFeatures", "MultiHot", "SentenceEncoder", "Side", "TokenVocabulary", "UserFeatures", "default_cache_dir",
    "tokenize",
]
