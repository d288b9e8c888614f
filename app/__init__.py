"""The DREX application: the ``drex`` CLI (``app.cli``), the Streamlit dashboard (``app.dashboard``) and
paper trading (``app.paper``). Nothing in the project imports ``app``."""
