"""OCPI 2.2.1, the CPO role: the HTTP API roaming partners call (served by ``csms serve`` on ``--ocpi-port`` under
``/ocpi``), the registration handshake, and the worker that pushes changes to them. docs/ocpi.md."""
