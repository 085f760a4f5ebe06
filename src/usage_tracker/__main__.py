"""``python -m usage_tracker`` is the ``usage-tracker`` command."""

from usage_tracker.cli import main

main()
