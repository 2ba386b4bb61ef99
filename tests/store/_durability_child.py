"""Child process of the durability test: append events and print each id once acknowledged.

    python _durability_child.py URL PREFIX N single|batch [fsync|os]

``single`` appends one event per transaction; ``batch`` submits from four
threads through a BatchWriter.  The last argument is the store's durability
(``os``: as the server can run it, with background WAL checkpoints).  An id is printed only after the call that
stored it has returned, i.e. after its commit.
"""

from __future__ import annotations

import sys
import threading

from zenrec.store import BatchWriter, Event, EventStore


def main() -> None:
    url, prefix, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    durability = sys.argv[5] if len(sys.argv) > 5 else "fsync"
    store = EventStore(url, background_checkpoint=durability == "os", durability=durability)
    print("ready", flush=True)
    if mode == "single":
        for i in range(n):
            eid = f"{prefix}-{i}"
            store.append([Event(f"u{i % 7}", f"i{i}", "click", event_id=eid)])
            print(eid, flush=True)
        return
    out = threading.Lock()
    writer = BatchWriter(store, max_batch=64, max_wait_ms=2)

    def worker(t: int) -> None:
        for i in range(t, n, 4):
            eid = f"{prefix}-{i}"
            writer.submit([Event(f"u{i % 7}", f"i{i}", "view", event_id=eid)]).result()
            with out:
                print(eid, flush=True)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()


if __name__ == "__main__":
    main()
