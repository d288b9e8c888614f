"""Paper trading: a strategy ticked on completed bars, simulated fills, everything in a durable ledger.

Modules: ``config`` (PaperConfig + YAML), ``ledger`` (open_ledger + the read API for the dashboard),
``schema`` (tables, version, migrations), ``lock`` (one tick per run at a time), ``feeds`` (replay / live
bars), ``execution`` (simulated fills), ``engine`` (one tick), ``scheduler`` (``paper run`` loop),
``report``, ``cli`` (the typer sub-app ``paper_app``). Nothing heavy is imported here.
"""
