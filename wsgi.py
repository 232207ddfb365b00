"""Entry point for ``gunicorn wsgi:app`` and the ``flask`` command (found as ``wsgi.py``)."""

import gc

from blog import create_app

app = create_app()

# Everything built so far (the modules, the app and its extensions: some 160,000 objects) lives
# as long as the process, yet every full collection walked it: 60-110 ms on the benchmark
# machine, a pause for the request in hand and a queue behind it. Frozen, it is left out of
# collection; what requests leave behind is still collected (a full collection then takes about
# 2 ms). Done here, in the server's entry point, rather than in create_app, so that tests and
# tools that build many apps can still free them.
gc.freeze()
