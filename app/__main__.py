"""``python -m app`` runs the ``drex`` command line."""
from app.cli import main

main()
