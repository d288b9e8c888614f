"""The DREX Streamlit dashboard (``drex dashboard``).

Layout:

* ``launch.py``   -- ``launch(host, port, *, headless)``: runs ``streamlit run`` on ``main.py`` (light imports:
  the CLI imports it at start-up).
* ``main.py``     -- the Streamlit entry script: ``st.navigation`` over the page registry.
* ``registry.py`` -- ``PAGES``: one ``PageEntry`` per page; a new page (e.g. the router inspector) is one more
  entry plus one script under ``views/``.
* ``views/*.py``  -- small page scripts calling the helpers below.
* ``params.py``, ``services.py``, ``training_runs.py``, ``figures.py`` -- plain modules (no Streamlit), tested
  directly; ``ui.py`` -- the Streamlit glue (cached loaders, error boundary, parameter widgets).

Nothing here is imported by the rest of the project except ``launch`` (by the CLI).
"""
