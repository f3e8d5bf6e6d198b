"""Qt-free review records: durable decisions, sign-off and CSV/JSON reports."""
