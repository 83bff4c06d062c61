"""Round trips saved by Session.flush against one execute per row, on real databases.

1000 INSERTs in one transaction, two ways: ``session.execute`` per row, and ``session.add`` per
row then one ``flush`` (the driver's batched executemany). Each runs through a relay on
loopback that delays every client write by ``--latency`` ms (a LAN-like round trip) and counts
them: the counts are the round trips, the times what they cost.

    .venv/bin/python benchmarks/bench_session_flush.py [--rows 1000] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import sessionpool

TARGETS = {
    "psycopg": ("postgresql+psycopg", 5432, "test"),
    "psycopg2": ("postgresql+psycopg2", 5432, "test"),
    "pymysql": ("mysql+pymysql", 3306, "test"),
}


class LatencyRelay:
    """Forwards 127.0.0.1:<port> to a server, delaying and counting each client write."""

    def __init__(self, target_port: int, latency: float) -> None:
        self.latency = latency
        self.writes = 0
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            client, _ = self._listener.accept()
            upstream = socket.create_connection(self._target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delayed: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if delayed:
                    self.writes += 1
                    time.sleep(self.latency)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


@contextlib.contextmanager
def counted(relay: LatencyRelay) -> Iterator[dict[str, float]]:
    result: dict[str, float] = {}
    writes, started = relay.writes, time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - started
    result["round_trips"] = relay.writes - writes


def run(driver: str, rows: int, latency: float) -> dict[str, dict[str, float]]:
    scheme, port, database = TARGETS[driver]
    relay = LatencyRelay(port, latency)
    user = "root@" if scheme.startswith("mysql") else ""
    pool = sessionpool.create_pool(
        f"{scheme}://{user}127.0.0.1:{relay.port}/{database}", min_size=1, max_size=1
    )
    table = f"sp_flush_{uuid.uuid4().hex[:8]}"
    insert = f"INSERT INTO {table} (id, name) VALUES (%s, %s)"
    results: dict[str, dict[str, float]] = {}
    try:
        with pool.session() as session:
            session.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(20))")
        with pool.session() as session, counted(relay) as per_row:
            for index in range(rows):
                session.execute(insert, (index, f"row {index}"))
        results["execute per row"] = per_row
        with pool.session() as session:
            session.execute(f"DELETE FROM {table}")
        with pool.session() as session, counted(relay) as flushed:
            for index in range(rows):
                session.add(insert, (index, f"row {index}"))
            session.flush()
        results["add + flush"] = flushed
        with pool.session() as session:
            assert session.fetchone(f"SELECT count(*) FROM {table}")[0] == rows
            session.execute(f"DROP TABLE {table}")
    finally:
        pool.close(force=True)
        relay.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0, help="ms added per client write")
    args = parser.parse_args()
    print(f"{args.rows} INSERTs in one transaction, {args.latency} ms added per client write\n")
    print("| driver | way | client writes (round trips) | seconds | x faster |")
    print("| --- | --- | ---: | ---: | ---: |")
    for driver in TARGETS:
        results = run(driver, args.rows, args.latency / 1000)
        base = results["execute per row"]["seconds"]
        for way, figures in results.items():
            print(
                f"| {driver} | {way} | {figures['round_trips']:,.0f} | "
                f"{figures['seconds']:.3f} | {base / figures['seconds']:.1f} |"
            )


if __name__ == "__main__":
    main()
