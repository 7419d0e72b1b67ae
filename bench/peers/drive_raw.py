"""The floors: raw grpcio (or, with `aio`, raw grpc.aio) on its own channel, nothing on top.

Run by bench_peers.py with the project's venv: `python drive_raw.py [aio]`. Registered
methods (grpcio's fastest call path) where the installed grpcio has them, request bytes
serialized once, answers' bytes left undecoded for `get`, `put` and `range`. `range_parse`
parses the range's answer with protobuf and reads every key and value (the floor for a client
that reads them); `watch` reads one Watch stream in the consumer's thread (task), parsing each
response and reading every event's key and value.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import _driver
import grpc

from etcd_layers.base._proto import rpc_pb2

RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
WATCH = "/etcdserverpb.Watch/Watch"


def fast_path(channel: Any, kind: str, path: str) -> Any:
    """A `kind` ("unary_unary", "stream_stream") multi-callable taking and giving bytes."""
    make = getattr(channel, kind)
    registered = "_registered_method" in inspect.signature(make).parameters
    extra = {"_registered_method": True} if registered else {}
    return make(path, request_serializer=None, response_deserializer=None, **extra)


class Requests:
    """The pre-serialized requests."""

    def __init__(self, setup: _driver.Setup) -> None:
        self.one = rpc_pb2.RangeRequest(key=setup.get_key).SerializeToString()
        self.many = rpc_pb2.RangeRequest(
            key=setup.range_prefix, range_end=setup.range_end
        ).SerializeToString()
        self.put = rpc_pb2.PutRequest(key=setup.put_key, value=setup.value).SerializeToString()
        self.watch = rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=setup.watch_prefix,
                range_end=setup.watch_end,
                start_revision=setup.watch_start,
            )
        ).SerializeToString()


def read_range(data: bytes) -> None:
    """Parse a range answer and read every key and value."""
    for kv in rpc_pb2.RangeResponse.FromString(data).kvs:
        kv.key  # noqa: B018 (read, as a user would)
        kv.value  # noqa: B018


def read_events(data: bytes) -> int:
    """Parse a watch answer, read every event's key and value, return how many there were."""
    events = rpc_pb2.WatchResponse.FromString(data).events
    for event in events:
        event.kv.key  # noqa: B018
        event.kv.value  # noqa: B018
    return len(events)


class Raw:
    """grpcio's sync API."""

    def __init__(self, setup: _driver.Setup) -> None:
        self.setup = setup
        self.requests = Requests(setup)
        self.channel = grpc.insecure_channel(setup.endpoint)
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self._range = fast_path(self.channel, "unary_unary", RANGE)
        self._put = fast_path(self.channel, "unary_unary", PUT)
        self._watch = fast_path(self.channel, "stream_stream", WATCH)

    def get(self) -> None:
        self._range(self.requests.one)

    def put(self) -> None:
        self._put(self.requests.put)

    def range(self) -> None:
        self._range(self.requests.many)

    def range_parse(self) -> None:
        read_range(self._range(self.requests.many))

    def watch(self) -> None:
        done = threading.Event()

        def requests() -> Iterator[bytes]:
            yield self.requests.watch
            done.wait(60)

        stream = self._watch(requests())
        seen = 0
        try:
            for data in stream:
                seen += read_events(data)
                if seen >= self.setup.watch_count:
                    break
        finally:
            done.set()
            stream.cancel()

    def close(self) -> None:
        self.channel.close()


class RawAio:
    """grpc.aio on one event loop."""

    def __init__(self, setup: _driver.Setup, channel: grpc.aio.Channel) -> None:
        self.setup = setup
        self.requests = Requests(setup)
        self.channel = channel
        self._range = fast_path(channel, "unary_unary", RANGE)
        self._put = fast_path(channel, "unary_unary", PUT)
        self._watch = fast_path(channel, "stream_stream", WATCH)

    async def get(self) -> None:
        await self._range(self.requests.one)

    async def put(self) -> None:
        await self._put(self.requests.put)

    async def range(self) -> None:
        await self._range(self.requests.many)

    async def range_parse(self) -> None:
        read_range(await self._range(self.requests.many))

    async def watch(self) -> None:
        done = asyncio.Event()

        async def requests() -> AsyncIterator[bytes]:
            yield self.requests.watch
            await done.wait()

        stream = self._watch(requests())
        seen = 0
        try:
            async for data in stream:
                seen += read_events(data)
                if seen >= self.setup.watch_count:
                    break
        finally:
            done.set()
            stream.cancel()

    async def close(self) -> None:
        await self.channel.close()


async def connect(setup: _driver.Setup) -> RawAio:
    """A grpc.aio channel to the endpoint, once ready."""
    channel = grpc.aio.insecure_channel(setup.endpoint)
    await asyncio.wait_for(channel.channel_ready(), 10)
    return RawAio(setup, channel)


if __name__ == "__main__":
    if sys.argv[1:] == ["aio"]:
        _driver.serve_async(connect)
    else:
        _driver.serve(Raw)
