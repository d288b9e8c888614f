"""The four MM-DREX LLM trading experts (trend, reversal, breakout, positioning) and their training.

Each expert is a language model that reads a textual market state (``experts.prompts``, causal features only)
and answers a target exposure on a 21-level grid (``experts.answers``: constrained decoding for any
tokenizer). ``experts.expert`` makes them decision-makers (``expert:trend`` ...: batched generation, a per-row
on-disk decision cache, the prompt and answer as the per-bar trace), registered through the ``drex.plugins``
entry point by ``experts.plugin`` so ``backtest`` never imports them. ``experts.training`` trains them (SFT on
the rule-based teachers blended with hindsight labels, then RL with ``rl.trainer.GRPOTrainer``, rewards from
``backtest.accounting.horizon_rewards``); ``drex train experts`` is its command. Nothing heavy is imported here.
"""
