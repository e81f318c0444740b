"""A minimal CSMS on the ``ocpp`` package (both versions) and its mutants: how the suite itself is tested."""
