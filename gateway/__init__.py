"""The gateway: admission, Redis bookkeeping, credit-based dispatch and the agent registry.

It meets node agents and clients only through ``proto/tokengate.proto`` over gRPC.
"""
