"""Report files: rows (dicts) to CSV, JSON Lines and Parquet written as they come, and the report plots (PNG).
Reads no database: the services hand the rows in."""
