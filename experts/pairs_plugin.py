"""Registration of the pairs decision-makers: ``pairs_zscore`` (the z-score threshold rule) and ``dqn_pairs``
(the deep-Q agent). Importing this module registers them; ``experts.plugin`` (the ``drex.plugins`` entry point
``experts``) imports it. Cheap: numpy/pandas only (statsmodels, torch and SB3 load in the training code)."""
from __future__ import annotations

from experts import dqn_pairs, pairs

__all__ = ["dqn_pairs", "pairs"]
