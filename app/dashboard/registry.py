"""The page registry: which pages the dashboard has, in menu order.

A page is a small script under ``app/dashboard/views/`` plus one ``PageEntry`` here. Later pages (the router
inspector: candles with stacked expert weights and per-bar traces) slot in by adding an entry (or calling
``register_page`` from ``main.py`` before navigation is built); nothing else changes.

``navigation_pages()`` turns the entries into ``st.Page`` objects for ``st.navigation`` (Streamlit is imported
only there, so the registry itself is plain data).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PAGES", "PAGES_DIR", "PageEntry", "navigation_pages", "register_page"]

PAGES_DIR = Path(__file__).resolve().with_name("views")


@dataclass(frozen=True)
class PageEntry:
    """One dashboard page.

    ``script``: file name under ``views/`` (or an absolute path); ``title``: menu label; ``url_path``: unique URL slug;
    ``icon``: a Material icon name (``:material/...:``) or emoji; ``default``: the landing page.
    """

    script: str
    title: str
    url_path: str
    icon: str = ""
    default: bool = False

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.script


PAGES: list[PageEntry] = [
    PageEntry("backtest.py", "Backtest", "backtest", ":material/show_chart:", default=True),
    PageEntry("sweep.py", "Sweep", "sweep", ":material/grid_on:"),
    PageEntry("training.py", "Training monitor", "training", ":material/monitoring:"),
    PageEntry("paper.py", "Paper trading", "paper", ":material/receipt_long:"),
    PageEntry("router.py", "Router", "router", ":material/alt_route:"),
    PageEntry("bandits.py", "Bandits & DQN", "bandits", ":material/casino:"),
    PageEntry("experts.py", "Experts", "experts", ":material/psychology:"),
]


def register_page(entry: PageEntry) -> PageEntry:
    """Append ``entry`` to ``PAGES``; a duplicate script, title or URL path raises ``ValueError``."""
    for existing in PAGES:
        for attr in ("script", "title", "url_path"):
            if getattr(existing, attr) == getattr(entry, attr):
                raise ValueError(
                    f"dashboard page {attr} {getattr(entry, attr)!r} is already registered "
                    f"(by {existing.title!r}); choose another {attr}"
                )
    if not entry.path.is_file():
        raise ValueError(f"dashboard page script {entry.path} does not exist; create it under {PAGES_DIR}")
    PAGES.append(entry)
    return entry


def navigation_pages() -> list[Any]:
    """``st.Page`` objects for every registered page, in menu order (exactly one default)."""
    import streamlit as st

    defaults = [p for p in PAGES if p.default]
    if len(defaults) != 1:
        raise ValueError(f"exactly one dashboard page must be the default, found {len(defaults)}")
    return [
        st.Page(p.path, title=p.title, icon=p.icon or None, url_path=p.url_path, default=p.default)
        for p in PAGES
    ]
