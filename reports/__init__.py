"""Risk reports: results schema, HTML report, limits and breaches, the results store."""
