"""moto in server mode on loopback, answering one request at a time.

moto's own `moto_server` handles requests on many threads without per-item
locking, so two conditional DynamoDB writes to the same item can both succeed
there (real DynamoDB serialises them). The pipeline's suite lease relies on
that atomicity, and its tests race executions on purpose: this launcher keeps
moto's threaded HTTP server (idle keep-alive connections must not block
others) but runs the application under one lock.

usage: python moto_server.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Consume the response inside the lock: a streamed body is part of the request.
            return list(self.app(environ, start_response))


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
