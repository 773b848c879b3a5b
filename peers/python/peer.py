#!/usr/bin/env python3
"""Drives the Python library consul-lock 0.1.6 (EphemeralLock, on python-consul) for
consul-lock's benchmark and interoperability tests.

Talks to the agent named by CONSUL_HTTP_ADDR (host:port or http://host:port). Modes:

    peer.py cycle --key K [--cycles N | --duration S] [--warmup S]
    peer.py hold  --key K [--for S]
    peer.py try   --key K [--wait-ms MS]

`--key` is the full Consul key: the library's `lock_key_pattern` is set to '%s' so that no
prefix is added. cycle prints one JSON object (raw per-cycle latencies; the Rust bench computes
the statistics). hold prints "locked <fencing index>" (the key's ModifyIndex, read after the
acquire: EphemeralLock does not return it), holds until stdin closes or --for passes, releases,
prints "unlocked". try prints "locked" (and releases), "timeout" or "error: ...".
Exit status: 0 on success (a try that timed out included), 1 on an error, 2 on bad arguments.
"""

import argparse
import json
import os
import resource
import sys
import threading
import time
from urllib.parse import urlsplit

try:
    import consul
    import consul_lock
    from consul_lock import EphemeralLock, LockAcquisitionException
except ImportError as e:  # pragma: no cover - reported to the caller
    print("error: consul-lock 0.1.6 is not importable (%s); run peers/install.sh" % e, file=sys.stderr)
    sys.exit(1)

LIBRARY = "consul-lock 0.1.6 (EphemeralLock) on python-consul %s" % getattr(consul, "__version__", "?")


def client():
    """A python-consul client for CONSUL_HTTP_ADDR, and a counter of its HTTP requests."""
    addr = os.environ.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500").strip()
    if "://" not in addr:
        addr = ("https://" if os.environ.get("CONSUL_HTTP_SSL", "").lower() in ("1", "true") else "http://") + addr
    u = urlsplit(addr)
    # python-consul also reads CONSUL_HTTP_ADDR itself and accepts only host:port: it was
    # parsed here (a URL too), so it is taken out of its sight.
    os.environ.pop("CONSUL_HTTP_ADDR", None)
    c = consul.Consul(host=u.hostname, port=u.port or 8500, scheme=u.scheme,
                      token=os.environ.get("CONSUL_HTTP_TOKEN") or None)
    count = [0]

    def on_response(response, *args, **kwargs):
        count[0] += 1

    c.http.session.hooks["response"].append(on_response)
    return c, count


def configure(c):
    consul_lock.defaults.consul_client = c
    consul_lock.defaults.lock_key_pattern = "%s"


def usage():
    """CPU time (ns, user + system) and context switches of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9), ru.ru_nvcsw + ru.ru_nivcsw


def one_cycle(key):
    lock = EphemeralLock(key, acquire_timeout_ms=5000, lock_timeout_seconds=15)
    lock.acquire(fail_hard=True)
    lock.release()


def run_cycle(args):
    c, count = client()
    configure(c)
    t0 = time.perf_counter()
    warm = 0
    while time.perf_counter() - t0 < args.warmup:
        one_cycle(args.key)
        warm += 1
    latencies = []
    req0 = count[0]
    cpu0, cs0 = usage()
    start = time.perf_counter()
    while True:
        if args.cycles and len(latencies) >= args.cycles:
            break
        if not args.cycles and time.perf_counter() - start >= args.duration:
            break
        t = time.perf_counter_ns()
        one_cycle(args.key)
        latencies.append(time.perf_counter_ns() - t)
    seconds = time.perf_counter() - start
    cpu1, cs1 = usage()
    out = {
        "peer": "python",
        "library": LIBRARY,
        "cycles": len(latencies),
        "warmup_cycles": warm,
        "seconds": seconds,
        "latencies_ns": latencies,
        "client_requests": count[0] - req0,
        "cpu_ns": cpu1 - cpu0,
        "context_switches": cs1 - cs0,
        "notes": ["EphemeralLock per cycle: session create, KV put ?acquire, session destroy"],
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def fencing_index(c, key):
    _, entry = c.kv.get(key, consistency="consistent")
    if entry is None:
        raise RuntimeError("the key %r is gone right after it was locked" % key)
    return entry["ModifyIndex"]


def run_hold(args):
    c, _ = client()
    configure(c)
    lock = EphemeralLock(args.key, acquire_timeout_ms=args.wait_ms, lock_timeout_seconds=max(10, int(args.ttl)))
    lock.acquire(fail_hard=True)
    try:
        print("locked %d" % fencing_index(c, args.key), flush=True)
        closed = threading.Event()

        def drain():
            for _ in sys.stdin:
                pass
            closed.set()

        threading.Thread(target=drain, daemon=True).start()
        closed.wait(args.hold_for if args.hold_for > 0 else None)
    finally:
        lock.release()
    print("unlocked", flush=True)


def run_try(args):
    c, _ = client()
    configure(c)
    lock = EphemeralLock(args.key, acquire_timeout_ms=args.wait_ms, lock_timeout_seconds=max(10, int(args.ttl)))
    try:
        ok = lock.acquire(fail_hard=False)
    except Exception as e:  # noqa: BLE001 - reported as the mode's answer
        lock.release()
        print("error: %s" % e, flush=True)
        return 1
    if ok:
        lock.release()
        print("locked", flush=True)
    else:
        # EphemeralLock created a session for the attempt: destroy it.
        lock.release()
        print("timeout", flush=True)
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="peer.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    cy = sub.add_parser("cycle", help="uncontended acquire + release cycles, JSON on stdout")
    cy.add_argument("--key", required=True)
    cy.add_argument("--cycles", type=int, default=0, help="number of cycles (0: run for --duration)")
    cy.add_argument("--duration", type=float, default=5.0, help="seconds to measure")
    cy.add_argument("--warmup", type=float, default=0.0, help="unmeasured seconds first")
    for name, text in (("hold", "lock, print 'locked <index>', hold, release"),
                       ("try", "one acquire attempt: 'locked', 'timeout' or 'error: ...'")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--key", required=True)
        s.add_argument("--wait-ms", type=int, default=0, help="acquire_timeout_ms (EphemeralLock retries with backoff)")
        s.add_argument("--ttl", type=float, default=15.0, help="lock_timeout_seconds (10..3600)")
        if name == "hold":
            s.add_argument("--for", dest="hold_for", type=float, default=0.0,
                           help="release after this many seconds even if stdin stays open (0: until stdin closes)")
    args = p.parse_args(argv)
    try:
        if args.mode == "cycle":
            run_cycle(args)
        elif args.mode == "hold":
            run_hold(args)
        else:
            return run_try(args)
    except LockAcquisitionException as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one line for the caller
        print("error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
