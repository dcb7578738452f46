"""Make moto's DynamoDB take one request at a time, as DynamoDB's own per-item atomicity would have it.

moto's backend is not thread-safe: a transaction that fails restores a copy of each table it touched, taken
before it started, so another thread's writes made meanwhile disappear, and a condition checked by one
thread can be overtaken by another's write before it is applied. DynamoDB has neither problem. Tests that
run concurrent writers against moto (threads in process, or a threaded moto server) serialize its
DynamoDB operations with this, so that what they measure is stackherd's use of conditions and
transactions, not moto's races.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_OPERATIONS = ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items")


@contextmanager
def serialized_moto_dynamodb() -> Iterator[None]:
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    originals = {name: getattr(DynamoDBBackend, name) for name in _OPERATIONS}

    def locked(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return fn(*args, **kwargs)

        return call

    for name, fn in originals.items():
        setattr(DynamoDBBackend, name, locked(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(DynamoDBBackend, name, fn)


def serve() -> None:
    """`python -m tests.moto_atomic -H HOST -p PORT`: moto's server with its DynamoDB serialized."""
    from moto.server import main

    with serialized_moto_dynamodb():
        main()


if __name__ == "__main__":
    serve()
