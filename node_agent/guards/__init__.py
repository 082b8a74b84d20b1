"""Guards and observability of the local scheduler (the seed's Guard House and friends).

Each module owns one guard: pure policy over frozen dataclasses, with its mutable state in one
class. :mod:`node_agent.guards.observer` composes them into the scheduler's observer hooks.
"""
