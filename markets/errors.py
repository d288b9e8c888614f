"""The one exception type of the data layer."""

from __future__ import annotations


class DataError(ValueError):
    """Invalid or unavailable market data.

    Carries what went wrong where: ``asset`` (symbol or spec), ``timestamp`` (the first offending row, if
    any) and ``rule`` (a short machine-readable name such as ``"high<low"`` or ``"duplicate-timestamp"``).
    ``str(err)`` is one human-readable line naming all three and, where possible, the fix.
    """

    def __init__(self, message: str, *, asset: str | None = None, timestamp=None, rule: str | None = None):
        self.asset = asset
        self.timestamp = timestamp
        self.rule = rule
        parts = []
        if asset is not None:
            parts.append(f"asset {asset}")
        if timestamp is not None:
            parts.append(f"at {timestamp}")
        if rule is not None:
            parts.append(f"rule {rule}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        super().__init__(prefix + message)


class OfflineFallback(UserWarning):
    """Warning category: a network source failed and cached bars were returned instead.

    The message names the source that failed, why (one line), and the cached range that was used.
    Silence it with ``warnings.simplefilter("ignore", markets.OfflineFallback)`` or pass ``offline=True``.
    """


__all__ = ["DataError", "OfflineFallback"]
