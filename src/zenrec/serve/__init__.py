"""Serving: top-k retrieval with filters (:mod:`zenrec.retrieval`) and the HTTP layer.

Nothing heavy is imported here; import the submodules you need.
"""
