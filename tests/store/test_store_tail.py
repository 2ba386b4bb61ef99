"""Tailing by seq under concurrent writers: a reader never skips an event committed behind its last seq."""

from __future__ import annotations

import threading

from zenrec.store.events import Event, EventStore


def test_a_tailer_sees_every_event_of_concurrent_writers(store_url):
    writers, per_writer = 4, 60
    with EventStore(store_url) as reader_store:
        stop = threading.Event()
        seen: list[int] = []
        errors: list[BaseException] = []

        def write(w: int) -> None:
            try:
                with EventStore(store_url) as st:  # its own connections, as another replica would
                    for n in range(per_writer):
                        st.append([Event(f"u{w}", f"i{n}", event_id=f"{w}-{n}")])
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def tail() -> None:
            last = 0
            while True:
                done = stop.is_set()
                page = reader_store.events_since(last)
                if page:
                    seen.extend(e.seq for e in page)
                    last = page[-1].seq
                elif done:
                    return

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        reader = threading.Thread(target=tail)
        reader.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        stop.set()
        reader.join(60)
        assert not errors, errors[:3]
        stored = [e.seq for e in reader_store.events_since(0)]
        assert len(stored) == writers * per_writer
        assert sorted(seen) == stored, f"the tailer missed {sorted(set(stored) - set(seen))[:10]}"
