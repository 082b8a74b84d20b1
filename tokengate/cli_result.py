"""``tokengate result TOKEN_ID``: a finished token's outcome, fetched by its id.

Prints the result (as JSON when it is plain data; ``--json``: the whole outcome as one JSON
object). Exit codes: 0 completed, 1 the token failed or was killed (its error printed),
2 it could not be fetched (unknown or expired id, another client's token, not finished within
``--wait``, no gateway).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tokengate.cli_cluster import client_options
from tokengate.shared.errors import PermissionDenied, TokenTimeout, UnknownToken
from tokengate.shared.lifecycle import TokenState
from tokengate.shared.token import TaskToken

NOT_FETCHED = (UnknownToken, PermissionDenied)  # errors of the fetch, not of the task


def outcome_of(token: TaskToken) -> dict[str, Any]:
    """A final token as plain data (what ``--json`` prints)."""
    out: dict[str, Any] = {"token_id": token.token_id, "state": token.state.value,
                           "attempt": token.attempt, "node": token.node}
    if token.state is TokenState.COMPLETED:
        out["result"] = token.result
    else:
        out.update(error_type=token.error_type, error_message=token.error_message,
                   traceback=token.traceback_text)
    return out


def cmd_result(args: argparse.Namespace) -> int:
    from tokengate.shared.client import open_client

    token_text = None
    if args.token_file:
        from tokengate.shared.auth import read_token

        token_text = read_token(None, args.token_file) or None
    client = open_client(args.gateway, token=token_text, connect_timeout=args.timeout,
                         client_id=args.client_id)
    try:
        token = client.fetch(args.token_id, any_owner=args.any)
        if not token.wait(args.wait):
            raise TokenTimeout(f"token {args.token_id} is not finished after {args.wait}s "
                               f"(state {token.state.value})")
    finally:
        client.close()
    if isinstance(token.error, NOT_FETCHED):
        raise token.error
    outcome = outcome_of(token)
    if args.json:
        print(json.dumps(outcome, default=repr))
    elif token.state is TokenState.COMPLETED:
        print(json.dumps(token.result, default=repr))
    else:
        print(f"{token.token_id}: {token.state.value}: {token.error_type}: "
              f"{token.error_message}", file=sys.stderr)
    return 0 if token.state is TokenState.COMPLETED else 1


def add_result_command(commands: Any) -> None:
    res = commands.add_parser("result", help="a finished token's outcome, by its id")
    client_options(res)
    res.add_argument("token_id")
    res.add_argument("--json", action="store_true", help="print the outcome as JSON")
    res.add_argument("--wait", type=float, default=30.0,
                     help="seconds to wait for a token not finished yet (default 30)")
    res.add_argument("--client-id", help="the client id that submitted it (default: "
                     "TOKENGATE_CLIENT_ID)")
    res.add_argument("--any", action="store_true", help="any client's token (operator token)")
    res.set_defaults(handler=cmd_result)
