"""Which Ray a job runs on, and joining it within a bounded time (imports ray).

The address rule (docs/scale-out.md): the address given (`--ray-address`, `address=`), else the
RAY_ADDRESS environment variable, else a fresh local Ray for this run (`address="local"`): never
the cluster that `ray start` last recorded in Ray's temp folder (`ray_current_cluster`), which may
be long dead or shared. A named cluster that does not answer is a `ClusterUnreachable` within
`timeout` seconds: `ray.init` itself retries a closed port for minutes, so the GCS port is probed
first (TCP connect) and `ray.init` runs in a thread that is given up when the time is spent.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time

import ray

from ovseg.settings.checks import SettingError
from ovseg.distributed import DEFAULT_CONNECT_TIMEOUT, ClusterUnreachable

ADDRESS_ENV = "RAY_ADDRESS"  # Ray's own convention
_HOW_TO = ("check the address and that the cluster is up (`ray status --address ADDRESS`), "
           "or name none (no --ray-address, RAY_ADDRESS unset) to run on a local Ray started for this job")


def resolve_address(address: str | None, option: str = "address") -> tuple[str, str]:
    """(address, where it came from) by the rule above; "local" means a fresh local Ray.
    `option` names the argument in messages ("--ray-address" for the CLI)."""
    if address:
        return address, option
    env = os.environ.get(ADDRESS_ENV, "").strip()
    if env:
        return env, ADDRESS_ENV
    return "local", "default"


def connect(address: str | None = None, *, timeout: float = DEFAULT_CONNECT_TIMEOUT, verbose: bool = False,
            option: str = "address", **init_args) -> None:
    """Make this process a Ray driver by the address rule; a Ray already initialized here is used.

    Arguments:
        address: "auto" (the cluster this machine belongs to), "HOST:PORT" (its GCS), "ray://HOST:PORT"
            (Ray Client), "local", or None (then RAY_ADDRESS, else "local").
        timeout: seconds a named cluster has to answer (> 0).
        verbose: keep Ray's INFO log lines, its C++ warnings and the workers' output.
        init_args: more `ray.init` arguments (e.g. num_cpus for a local Ray).

    Raises: ClusterUnreachable (a SettingError) naming the address and what to do.
    """
    if not timeout > 0:
        raise SettingError("ray_timeout", f"the Ray connection timeout must be > 0 seconds, got {timeout}")
    address, source = resolve_address(address, option)
    named = address != "local"
    deadline = time.monotonic() + timeout
    if named:  # a named cluster is checked even when this process has a Ray already
        _probe(address, source, deadline, timeout)
    if ray.is_initialized():
        return
    quiet(verbose)
    kwargs = {"address": address, "include_dashboard": False, "log_to_driver": verbose,
              "logging_level": logging.INFO if verbose else logging.ERROR, **init_args}
    with contextlib.nullcontext() if verbose else without_stderr_lines(RAY_LEVEL_LINE):
        if not named:
            ray.init(**kwargs)  # starting a local Ray has Ray's own timeouts
            return
        _init_within(kwargs, address, source, deadline, timeout)


# What Ray's C++ core prints (on the process's stderr, not through Python) when it reads the log
# level `quiet` sets: "[... I 123 123] logging.cc:303: Set ray log level from environment variable ..."
RAY_LEVEL_LINE = "Set ray log level from environment variable"


@contextlib.contextmanager
def without_stderr_lines(text: str):
    """Inside, what is written to file descriptor 2 (Python's and C++'s alike) is held back, then
    written out without the lines that contain `text` (also when the block raises)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if text not in line]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet(verbose: bool) -> None:
    """Unless `verbose`, Ray's console output is errors only: the Python loggers "ray" and
    "ray.data" (its session log file keeps everything), and Ray's C++ log level where the user
    has not set one (RAY_BACKEND_LOG_LEVEL=fatal, read by this driver and by the processes of a
    local Ray it starts: else Ray Data's actor pools print an "E ... constructor arguments in the
    object store" line on every run; Ray then prints one line saying it read the level)."""
    if verbose:
        return
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray").setLevel(logging.ERROR)
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def _host_port(address: str) -> tuple[str, int, str] | None:
    """(host, port, the address as resolved) of a GCS or ray:// address; "auto" is resolved by
    Ray's own lookup (RAY_ADDRESS, `ray_current_cluster`, running GCS processes); None when
    it cannot be parsed (ray.init's bounded wait then still applies)."""
    shown = address
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # a Ray whose internals moved
            return None
        address = canonicalize_bootstrap_address_or_die("auto")  # ConnectionError: none found
        shown = f"auto (= {address})"
    host, sep, port = address.split("://")[-1].rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port), shown


def _probe(address: str, source: str, deadline: float, timeout: float) -> None:
    """Return once a TCP connection to the address's port succeeds; retry refusals (a head
    that is starting) until `deadline`, then raise ClusterUnreachable."""
    try:
        target = _host_port(address)
    except ConnectionError:
        raise ClusterUnreachable(f"{source}={address}: no running Ray cluster found on this machine; "
                                 f"{_HOW_TO}") from None
    if target is None:
        return
    host, port, address = target
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(left, 5.0))):
                return
        except socket.gaierror as err:
            raise ClusterUnreachable(f"cannot resolve the Ray cluster address {source}={address}: "
                                     f"{err.strerror}; {_HOW_TO}") from None
        except OSError as err:
            reason = err.strerror or type(err).__name__
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    raise ClusterUnreachable(f"the Ray cluster at {source}={address} did not answer within "
                             f"{timeout:g} s ({reason}); {_HOW_TO}")


def _init_within(kwargs: dict, address: str, source: str, deadline: float, timeout: float) -> None:
    """ray.init(**kwargs) in a daemon thread, given up at `deadline` (Ctrl-C stays in this,
    the main thread, and interrupts the wait)."""
    outcome: list = []

    def run() -> None:
        try:
            ray.init(**kwargs)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(err)

    worker = threading.Thread(target=run, name="ovseg-ray-connect", daemon=True)
    worker.start()
    while worker.is_alive() and time.monotonic() < deadline:
        worker.join(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
    if not outcome:
        raise ClusterUnreachable(f"the Ray cluster at {source}={address} did not complete the "
                                 f"connection within {timeout:g} s; {_HOW_TO}")
    err = outcome[0]
    if err is None:
        return
    if _auth_error(err):
        raise ClusterUnreachable(
            f"cannot join the Ray cluster at {source}={address}: it asks for an authentication token; "
            "set RAY_AUTH_MODE=token and give the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
            "or ~/.ray/auth_token; https://docs.ray.io/en/latest/ray-security/token-auth.html)") from None
    if isinstance(err, (ConnectionError, TimeoutError)):
        raise ClusterUnreachable(f"cannot join the Ray cluster at {source}={address}: {err}; "
                                 f"{_HOW_TO}") from None
    raise err


def _auth_error(err: BaseException | None) -> bool:
    """Whether Ray refused the connection for want of a token (Ray >= 2.5x token auth), anywhere in
    the chain of causes (ray.init wraps it in a ConnectionError)."""
    seen = 0
    while err is not None and seen < 10:
        if type(err).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(err):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False
