"""Call a local node's RPC endpoint from the shell, with a token for a role.

    python -m deploy.local.call --role operator proposals.list_proposals '{"status": "submitted"}'

The second argument is the keyword arguments as JSON. The token is signed with
the node's secret from ``run/<code>/auth_secret`` (made by ``make run``).
A typed error is printed as ``<type>: <message>`` with exit code 1.
"""

import argparse
import json
import os
import sys

from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from deploy.local.node import DEFAULT_KELURAHAN, node_paths, service_environment
from shared.actor import Actor
from shared.auth import issue_token


def token_for(code, role, user, rw=None, rt=None, scope=None):
    env = service_environment(code, "proposals", node_paths(code))
    actor = Actor(user_id=user, role=role, kelurahan=scope or code, rw=rw, rt=rt)
    return env, issue_token(env["AUTH_SECRET"], actor)


def add_identity_arguments(parser):
    parser.add_argument("--kelurahan", default=os.environ.get("KELURAHAN_CODE", DEFAULT_KELURAHAN))
    parser.add_argument("--role", default="operator")
    parser.add_argument("--user", default="demo-user", help="pseudonymous user id")
    parser.add_argument("--rw", type=int)
    parser.add_argument("--rt", type=int)
    parser.add_argument("--scope", help="scope code if not the kelurahan (camat: 32.75.05)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_identity_arguments(parser)
    parser.add_argument("method", help="service.method, e.g. proposals.status")
    parser.add_argument("kwargs", nargs="?", default="{}", help="keyword arguments as JSON")
    args = parser.parse_args(argv)
    service, _, method = args.method.partition(".")
    env, token = token_for(args.kelurahan, args.role, args.user, args.rw, args.rt, args.scope)
    config = {"AMQP_URI": env["AMQP_URI"]}
    with ClusterRpcProxy(config, context_data={"authorization": token}, timeout=30) as rpc:
        try:
            result = getattr(getattr(rpc, service), method)(**json.loads(args.kwargs))
        except RemoteError as error:
            print(f"{error.exc_type}: {error.value}", file=sys.stderr)
            sys.exit(1)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
