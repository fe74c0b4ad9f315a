"""Exit 0 when a URL answers 200 within 5 s, 1 otherwise: a container's health check.

python -m deploy.probe [http://127.0.0.1:8000/ready]
"""

import sys
import urllib.request

DEFAULT = "http://127.0.0.1:8000/ready"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    url = argv[0] if argv else DEFAULT
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            ok = response.status == 200
    except OSError as error:  # URLError and HTTPError (503) included
        print(f"{url}: {error}", file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
