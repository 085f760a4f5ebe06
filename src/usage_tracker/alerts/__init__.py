"""Alerts: rules read from ALERTS_FILE, evaluated after every sync against the reports,
recorded once in the database, then delivered through Apprise with retries."""
