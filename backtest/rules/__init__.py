"""The rule-based strategies, one module per family; registered by name in ``backtest.strategies``."""
