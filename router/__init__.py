"""The MM-DREX vision-language router: reads candlestick-chart images and long-horizon features and weights
the four experts; combination of their exposures; per-bar routing traces.

Not built yet (a later issue). How it will slot in: the router registers as a strategy
(``backtest.strategies.register_strategy``), its routing trace is the strategy's per-bar ``explain`` record
(stored by paper trading, shown by a dashboard page added through ``app.dashboard.registry``), its
distribution over experts is an action-level policy (B, 1) trained by ``rl.trainer.GRPOTrainer``, and its
supervised stage learns the regime labels of ``markets.synthetic.regimes``.
"""
