"""The MM-DREX router: reads candlestick charts and long-horizon features, weights the experts, and trades the
weighted combination of their exposures (the routed strategy ``drex``). See docs/router.md.

Modules (import them directly; nothing here imports torch, so ``drex --help`` stays fast):

* :mod:`router.charts` - batched candlestick rasterizer (the router's picture of the last W bars).
* :mod:`router.features` - causal long-horizon temporal tokens (252 bars in 21 chunks) and the now token.
* :mod:`router.model` - the network: chart ViT + temporal encoder + fusion transformer, regime and routing
  heads; :mod:`router.hf` - Hugging Face vision(-language) backbones, frozen or LoRA.
* :mod:`router.experts` - expert sets (``rules``, ``llm``, lists) and their exposures.
* :mod:`router.strategy` - the ``drex`` decision-maker (projection onto constraints, traces);
  :mod:`router.plugin` registers it (entry point ``drex.plugins``: ``router = "router.plugin"``).
* :mod:`router.data`, :mod:`router.pool`, :mod:`router.policy`, :mod:`router.training` - training data,
  the SFT stage and the GRPO stage (``drex train router``); rewards come from ``backtest.accounting``.
"""
