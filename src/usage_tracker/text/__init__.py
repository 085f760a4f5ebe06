"""Text that crosses the program's edge: documents people write for it (:mod:`.documents`: YAML
and JSON read with the line and column of every error) and names strangers chose, written
safely to a terminal, a spreadsheet or a metric (:mod:`.untrusted`)."""
