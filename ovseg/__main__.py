"""`ovseg` (the console script) and `python -m ovseg`: the command line, with Ctrl-C exiting 130
even while it imports (`ovseg.commands.edge.Group` turns the KeyboardInterrupt into exit 130 once click
runs).

A Ctrl-C that lands while a module is being imported is held back until the import is over:
Python's KeyboardInterrupt raised inside torch's import (C++ that calls back into Python through
pybind11) cannot unwind through the C++ frames, and the process aborts ("terminate called after
throwing an instance of 'pybind11::error_already_set'", SIGABRT) instead of exiting 130. Imports
of the command line take a few seconds; after them the handler raises at once, as Python's own.
"""
import os
import signal
import sys
import threading

_IMPORTING = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
_pending = False  # a Ctrl-C held back by an import, not yet raised


def _sigint(signum, frame) -> None:
    """SIGINT: KeyboardInterrupt, or, inside an import, the same signal again 50 ms later."""
    global _pending
    while frame is not None:
        if frame.f_code.co_filename in _IMPORTING:
            _pending = True
            again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
            again.daemon = True  # never keeps the process alive
            again.start()
            return
        frame = frame.f_back
    _pending = False
    raise KeyboardInterrupt


def _interrupted() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a re-sent signal must not land in the shutdown
    sys.stderr.write("interrupted\n")
    raise SystemExit(130) from None


def run() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _sigint)
    try:
        from ovseg.cli import main

        main()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        if _pending:  # the command ended (an error, or done) before the held-back Ctrl-C landed
            _interrupted()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # in the shutdown: die of the signal, no traceback
        raise
    if _pending:
        _interrupted()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


if __name__ == "__main__":
    run()
