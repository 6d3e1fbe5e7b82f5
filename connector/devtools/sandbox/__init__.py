"""A local emulator of the OptiKPI ingest API: signature checks, validation, faults and an admin API."""
