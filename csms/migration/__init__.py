"""Bringing an operator's data into chargetwin from elsewhere: readers that turn a source into import records
(``csms.services.imports`` writes them)."""
