"""Stream records of the write path's tables, built the way Lambda delivers them, for the
writeback's tests and its bench (`bench/bench_writeback.py`): a mapping config of the `orders`
example, the write path's item shape (docs/ingest-api.md), the handler's own kind of PostgreSQL
connection to a local server (`tools.localpipe.servers`), and a proxy counting network round
trips. Nothing here imports pytest or the tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from typing import Any

from dms_event_bus.handlers.writeback import Config
from dms_event_bus.handlers.writeback_sql import connect

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def stream_arn(table: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/stream/2026-01-01T00:00:00.000"


def config(table: str, legacy_table: str, *, kind: str = "postgres",
           deletes: bool = True, column_types: dict[str, str] | None = None) -> Config:
    """orders: item id -> order_id, amount -> amount, note -> note, version -> row_version."""
    return Config.from_json(
        {
            "target": {"kind": kind},
            "tables": {
                table: {
                    "legacy_table": legacy_table,
                    "key_columns": {"id": "order_id"},
                    "columns": {"amount": "amount", "note": "note", "customer": "customer"},
                    "version_attribute": "version",
                    "version_column": "row_version",
                    "column_types": column_types or {},
                    "deletes": deletes,
                }
            },
        }
    )


def item(order_id: int, version: int, *, amount: str = "10.50", note: str = "n",
         customer: str = "c1", status: str | None = "accepted") -> dict[str, Any]:
    """An item image as the write path stores it (DynamoDB JSON)."""
    image: dict[str, Any] = {
        "id": {"N": str(order_id)},
        "amount": {"N": amount},
        "note": {"S": note},
        "customer": {"S": customer},
        "version": {"N": str(version)},
        "received_at": {"S": "2026-11-22T22:00:00Z"},
    }
    if status is not None:
        image["status"] = {"S": status}
    return image


class Records:
    """Builds stream records the way Lambda delivers them, with increasing sequence numbers."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.seq = 1000

    def _record(self, event: str, keys: dict[str, Any], new: dict[str, Any] | None,
                old: dict[str, Any] | None, identity: dict[str, str] | None) -> dict[str, Any]:
        self.seq += 1
        body: dict[str, Any] = {
            "ApproximateCreationDateTime": 1795000000,
            "Keys": keys,
            "SequenceNumber": f"{self.seq:021d}",
            "SizeBytes": 100,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if new is not None:
            body["NewImage"] = new
        if old is not None:
            body["OldImage"] = old
        record: dict[str, Any] = {
            "eventID": uuid.uuid4().hex,
            "eventName": event,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": body,
            "eventSourceARN": stream_arn(self.table),
        }
        if identity:
            record["userIdentity"] = identity
        return record

    def insert(self, new: dict[str, Any]) -> dict[str, Any]:
        return self._record("INSERT", {"id": new["id"]}, new, None, None)

    def modify(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return self._record("MODIFY", {"id": new["id"]}, new, old, None)

    def remove(self, old: dict[str, Any], *, ttl: bool = False) -> dict[str, Any]:
        identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
        return self._record("REMOVE", {"id": old["id"]}, None, old, identity)


def pg_connect(db: Any, wire: WireCounter | None = None) -> Any:
    """The handler's own kind of connection (`writeback_sql.connect`: psycopg, autocommit;
    TLS off on loopback) to a test database (`tools.localpipe.servers.DbServer`), through `wire`'s
    proxy when given."""
    host, port = (wire.host, wire.port) if wire else (db.host, db.port)
    target = {"kind": "postgres", "host": host, "port": port, "database": db.dbname,
              "tls": False}
    return connect(target, db.user, db.password)


class WireCounter:
    """Counts the network round trips of connections made through it, independently of the
    driver: a loopback TCP proxy in front of the database server. A round trip is the server
    answering after the client has sent something (a client that sends again before the
    answer has arrived does not add one: that is pipelining). Connect to `host`:`port`
    instead of the server's own address."""

    def __init__(self, server_host: str, server_port: int) -> None:
        self.round_trips = 0
        self._upstream = (server_host, server_port)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self._upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent = [False]  # this connection: the client sent since the last answer
            threading.Thread(target=self._pump, args=(client, server, sent, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, sent, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, sent: list[bool],
              from_client: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                with self._lock:
                    if from_client:
                        sent[0] = True
                    elif sent[0]:
                        self.round_trips += 1
                        sent[0] = False
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
