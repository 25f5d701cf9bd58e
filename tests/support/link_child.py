"""A process that opens the module link, sends one message, says so and waits to be killed.

``python -m tests.support.link_child <data-dir> <output> <type> <message-id>``, with the
link's environment (a module connection string) set. It prints ``queued`` once ``send``
returned; a test then kills it with SIGKILL, as a crash or a power cut would.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from edge_link.base import LinkHandlers
from edge_link.factory import open_link


def main(data_dir: str, output: str, msg_type: str, message_id: str) -> None:
    link = open_link("uploader_module", data_dir=Path(data_dir), twin_file=None)
    link.start(LinkHandlers(on_twin=lambda desired: None, on_patch=lambda patch: True,
                            on_method=lambda name, payload: (404, None)))
    link.send(output, msg_type, {"messageId": message_id}, message_id=message_id)
    sys.stdout.write("queued\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
