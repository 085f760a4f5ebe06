"""Budgets that act: what budget rules ask to be done at a provider once a budget is spent, with
a connection's separate write key, recorded before it is done, done once, and undone exactly
(DESIGN §14)."""
