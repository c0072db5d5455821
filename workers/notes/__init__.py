"""A worked example of a manager written as nova writes them (doc/source/writing-a-manager.md).

`manager.py` (the smart part, a versioned RPC API and a 1.x proxy), `drivers.py` (one driver
per implementation, chosen by config), `exception.py` (what travels to callers) and
`rpcapi.py` (the client other services use, nova's `ComputeAPI` pattern).
"""
