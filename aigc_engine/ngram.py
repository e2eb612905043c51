"""The compiled n-gram language model (public face of the C++ core).

``NgramModel`` estimates modified Kneser-Ney models exactly as KenLM's lmplz,
reads and writes ARPA files (KenLM's, SRILM's) and a compact binary format,
scores sentences and corpora as KenLM's ``query`` does (log10), and generates.
The ``ngram`` generator plugin wraps it; use it directly for scoring::

    from aigc_engine.ngram import NgramModel
    lm = NgramModel.read_arpa("model.arpa")
    lm.score("to be or not to be")          # log10 probability, like kenlm.Model.score
"""

from __future__ import annotations

from ._core import NGRAM_BINARY_VERSION, NGRAM_MAX_ORDER, NgramModel, parse_memory_size

__all__ = ["NGRAM_BINARY_VERSION", "NGRAM_MAX_ORDER", "NgramModel", "parse_memory_size"]
