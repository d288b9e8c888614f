"""Streamlit entry script of the DREX dashboard: ``streamlit run app/dashboard/main.py``.

Builds the multipage navigation from ``app.dashboard.registry.PAGES`` and runs the selected page.
"""
from __future__ import annotations

import sys
from pathlib import Path

try:  # a plain checkout that was not pip-installed: make the project root importable
    import app.dashboard  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - depends on how the project is installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import streamlit as st

from app.dashboard.registry import navigation_pages

st.set_page_config(page_title="DREX", page_icon=":material/candlestick_chart:", layout="wide")
st.navigation(navigation_pages()).run()
