"""Print a signed token for a role on a local node (see deploy/local/call.py)."""

import argparse

from deploy.local.call import add_identity_arguments, token_for


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    add_identity_arguments(parser)
    args = parser.parse_args(argv)
    print(token_for(args.kelurahan, args.role, args.user, args.rw, args.rt, args.scope)[1])


if __name__ == "__main__":
    main()
