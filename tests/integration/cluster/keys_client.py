"""A client process of the submit-once and results-by-id tests (its own process, so a test
can SIGKILL it and start another). Reads TOKENGATE_GATEWAY, TOKENGATE_TOKEN and
TOKENGATE_CLIENT_ID; prints one JSON line per answer.

``submit CALLS``: submit ``[[task, args, key or null], ...]``, print their ids, then park
until the test kills it. ``get TASK ARGS KEY``: submit one keyed call, print "submitted",
then its outcome. ``fetch ID...``: each token's outcome by id (``tokengate.cli_result``'s
shape).
"""

from __future__ import annotations

import json
import sys
import threading

import tokengate
from tokengate.cli_result import outcome_of


def main(mode: str, *args: str) -> None:
    client = tokengate.connect(install=False)
    if mode == "submit":
        ids = [client.submit_by_name(task, tuple(call), key=key).token_id
               for task, call, key in json.loads(args[0])]
        print(json.dumps(ids), flush=True)
        threading.Event().wait()  # parked: the test SIGKILLs this process
    elif mode == "get":
        token = client.submit_by_name(args[0], tuple(json.loads(args[1])), key=args[2])
        print("submitted", flush=True)
        token.wait(60)
        print(json.dumps(outcome_of(token)), flush=True)
    elif mode == "fetch":
        tokens = [client.fetch(token_id) for token_id in args]
        for token in tokens:
            token.wait(60)
            print(json.dumps(outcome_of(token), default=repr), flush=True)
    client.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
