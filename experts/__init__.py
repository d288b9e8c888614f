"""The four LLM trading experts (trend, reversal, breakout, positioning): backends, SFT + RL training.

Not built yet (a later issue). How they will slot in: each expert registers as a strategy with
``backtest.strategies.register_strategy`` (so the CLI, sweeps, the dashboard and paper trading pick it up
without changes), returns target weights decided at bar t's close plus a per-bar ``explain`` record (its
rationale), is trained by ``rl.trainer.GRPOTrainer`` through the ``rl.policy.Policy`` protocol with rewards
computed by ``backtest.run``'s accounting, and learns first from the rule-based teachers of the same name in
``backtest.rules``.
"""
