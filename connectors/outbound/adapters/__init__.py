"""Domain adapters (work orders, tickets, materials, cases, nonconformances, supplier messages) declared
in JSON spec files on top of the REST adapter; see ``spec.py`` for the format and ``specs/`` for the
shipped ones."""
