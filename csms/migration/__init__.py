"""Moving an operator's data between CSMSs: chargetwin's own bundle (export/import) and imports from other platforms.

See docs/design/migration.md.
"""
