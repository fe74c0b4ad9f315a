"""An SMTP sink for development and tests: a real SMTP server on loopback (aiosmtpd) that
writes every message it accepts to a file and delivers none.

``make run`` starts one for notify's email (``deploy/local/node.py``); the tests
start their own. Run it as its own process: ``python -m deploy.local.smtp_sink
--port P --log F``;
each accepted message is one JSON line ``{"from", "to", "message_id", "subject",
"body"}``.
"""

import argparse
import json
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, path):
        self.log = open(path, "a")  # noqa: SIM115 - open for the life of the process

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        self.log.write(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "message_id": message["Message-ID"],
                    "subject": message["Subject"],
                    "body": message.get_content(),
                }
            )
            + "\n"
        )
        self.log.flush()
        return "250 OK"


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    controller = Controller(Recorder(args.log), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
