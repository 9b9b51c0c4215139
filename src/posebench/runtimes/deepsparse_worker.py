"""DeepSparse worker: runs inside the DeepSparse 1.8 environment (Python 3.11, numpy<2).

Started by `posebench.runtimes.deepsparse` as `<deepsparse-python> deepsparse_worker.py <src-dir>`;
it imports only posebench's stdlib+numpy modules (`wire`, `latency`) from <src-dir>. Commands
arrive on stdin, replies leave on the original stdout; everything DeepSparse prints goes to stderr.
Latency is timed here, around `Engine.run` alone, so the pipe is never in the figure.
"""

from __future__ import annotations

import os
import sys
import traceback


def main() -> int:
    # Python put this file's folder (posebench/runtimes) first on sys.path, where deepsparse.py
    # would shadow the real deepsparse package: replace it with the folder holding posebench.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [sys.argv[1]] + [p for p in sys.path if os.path.abspath(p or ".") != here]
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # library prints must not corrupt the reply stream
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer

    from posebench.latency import LatencyProtocol, measure
    from posebench.runtimes.wire import receive, send

    engine = None
    while True:
        try:
            header, arrays = receive(inp)
        except EOFError:
            return 0
        cmd = header.get("cmd")
        try:
            if cmd == "load":
                import deepsparse
                from deepsparse import Engine

                engine = Engine(model=header["model"], batch_size=1, num_cores=header["threads"])
                try:
                    from deepsparse.cpu import cpu_architecture

                    arch = cpu_architecture()
                    isa = getattr(arch, "isa", "")
                except Exception:  # informational only
                    isa = ""
                send(out, {"ok": True, "info": {"version": deepsparse.__version__, "num_cores": engine.num_cores,
                                                "isa": str(isa), "python": sys.version.split()[0]}})
            elif cmd == "infer":
                send(out, {"ok": True}, engine.run(arrays, val_inp=True))
            elif cmd == "measure":
                engine.run(arrays, val_inp=True)  # validate once, then time the bare call
                protocol = LatencyProtocol(**header["protocol"])
                stats = measure(lambda: engine.run(arrays, val_inp=False), protocol)
                send(out, {"ok": True, "stats": stats.to_dict()})
            elif cmd == "close":
                send(out, {"ok": True})
                return 0
            else:
                send(out, {"ok": False, "error": f"unknown command {cmd!r}"})
        except Exception as exc:
            traceback.print_exc()
            send(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    raise SystemExit(main())
