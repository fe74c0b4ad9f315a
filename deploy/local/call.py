"""Call a local node's RPC endpoint from the shell, with a token for a role.

    python -m deploy.local.call --role operator proposals.list_proposals '{"status": "submitted"}'

The second argument is the keyword arguments as JSON. The token is signed with
the node's secret from ``run/<code>/auth_secret`` (made by ``make run``).
A typed error is printed as ``<type>: <message>`` with exit code 1, and so is a
node that is not set up or not running, or a broker that does not answer, each
with what to do about it; arguments that are not a JSON object are a usage error
(exit code 2).
"""

import argparse
import json
import os
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit

from amqp.exceptions import NotAllowed
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from deploy.local.node import DEFAULT_KELURAHAN, node_paths, service_environment
from shared.actor import Actor
from shared.auth import issue_token


def token_for(code, role, user, rw=None, rt=None, scope=None):
    """The node's environment and a token for the caller; exits with a message if this
    machine has never set up the node of ``code`` (it makes no secret for it)."""
    state = node_paths(code, create=False)
    if not (state / "auth_secret").exists():
        sys.exit(f"no node of {code} is set up here: start it with make run KELURAHAN_CODE={code}")
    env = service_environment(code, "proposals", state)
    actor = Actor(user_id=user, role=role, kelurahan=scope or code, rw=rw, rt=rt)
    return env, issue_token(env["AUTH_SECRET"], actor)


def add_identity_arguments(parser):
    parser.add_argument("--kelurahan", default=os.environ.get("KELURAHAN_CODE", DEFAULT_KELURAHAN))
    parser.add_argument("--role", default="operator")
    parser.add_argument("--user", default="demo-user", help="pseudonymous user id")
    parser.add_argument("--rw", type=int)
    parser.add_argument("--rt", type=int)
    parser.add_argument("--scope", help="scope code if not the kelurahan (camat: 32.75.05)")


def json_object(text):
    """argparse type: the keyword arguments, a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("not a JSON object ({...})")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_identity_arguments(parser)
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the answer")
    parser.add_argument("method", help="service.method, e.g. proposals.status")
    parser.add_argument(
        "kwargs", nargs="?", default={}, type=json_object, help="keyword arguments as JSON"
    )
    args = parser.parse_args(argv)
    service, _, method = args.method.partition(".")
    if not service or not method:
        parser.error(f"method: {args.method!r} is not service.method, e.g. proposals.status")
    env, token = token_for(args.kelurahan, args.role, args.user, args.rw, args.rt, args.scope)
    with explained(env["AMQP_URI"], service, args.kelurahan, args.timeout):
        result = call(env["AMQP_URI"], token, service, method, args.kwargs, args.timeout)
    try:
        print(json.dumps(result, indent=2, ensure_ascii=False), flush=True)
    except BrokenPipeError:  # the reader (head, say) has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextmanager
def explained(amqp_uri, service, code, timeout):
    """Exits with one line saying what went wrong in a call to ``service`` on the node
    of ``code``, and what to do about it, instead of a traceback (exit code 1)."""
    try:
        yield
    except RemoteError as error:
        sys.exit(f"{error.exc_type}: {error.value}")
    except UnknownService:
        sys.exit(f"{service} does not run on the node of {code}: start it with make run")
    except RpcTimeout:
        sys.exit(f"{service} did not answer within {timeout:g} s: is the node running? (make run)")
    except NotAllowed:
        sys.exit(f"the broker has no vhost for {code}: start it with make run")
    except OSError as exc:
        broker = urlsplit(amqp_uri)
        sys.exit(f"cannot reach the broker at {broker.hostname}:{broker.port}: {exc.strerror}")


def call(amqp_uri, token, service, method, kwargs, timeout):
    """``service.method(**kwargs)`` on the node, as the token's caller."""
    config = {"AMQP_URI": amqp_uri}
    with ClusterRpcProxy(config, context_data={"authorization": token}, timeout=timeout) as rpc:
        return getattr(getattr(rpc, service), method)(**kwargs)


if __name__ == "__main__":
    main()
