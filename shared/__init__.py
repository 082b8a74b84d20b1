"""What every TokenGate component uses: errors, tags, the token model and its lifecycle.

This package imports no component (``gateway``, ``node_agent``, ``dashboard``).
"""
