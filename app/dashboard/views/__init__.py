"""Dashboard page scripts, run by Streamlit through ``st.navigation`` (see ``app.dashboard.registry``).

Not a ``pages/`` folder on purpose: Streamlit would also auto-list a ``pages/`` folder next to the entry
script. This ``__init__`` only makes the scripts ship with the package; never import the pages.
"""
