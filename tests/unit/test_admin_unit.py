"""Admin calls without a server: argument checks, conversions, snapshot verification, sinks."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from google.protobuf.message import Message
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers import Client, Permission, errors
from etcd_layers.base import AlarmMember, AlarmType, Member, RolePermission
from etcd_layers.base._admin_core import (
    ALARM,
    MEMBER_LIST,
    ROLE_GET,
    check_member_id,
    check_peer_urls,
    check_role_name,
    check_user_name,
    endpoints_from_members,
    permission_range,
)
from etcd_layers.base._connection import Connection
from etcd_layers.base._methods import Method
from etcd_layers.base._proto import auth_pb2, rpc_pb2
from etcd_layers.base._snapshot import SHA256_SIZE, SnapshotSink, SnapshotVerifier

# --- a recording fake of the connection --------------------------------------------------


class RecordingConnection:
    """Records every call; answers with canned messages per method, or fails the test."""

    def __init__(self, answers: dict[str, list[Message]] | None = None) -> None:
        self.calls: list[tuple[str, Message, bool, str | None]] = []
        self.answers = answers or {}
        self.addresses = ["127.0.0.1:2379"]
        self.set_to: list[list[str]] = []
        self.closed_flag = False
        self.default_timeout: float | None = None
        self.hooks: list[Callable[[], None]] = []

    def call(
        self,
        method: Method[Any],
        request: Message,
        timeout: float | None,
        *,
        idempotent: bool,
        address: str | None = None,
    ) -> Message:
        self.calls.append((method.path, request, idempotent, address))
        queue = self.answers.get(method.path)
        if not queue:
            pytest.fail(f"unexpected call to {method.path}")
        return queue.pop(0)

    def deadline(self, timeout: float | None) -> Any:
        from etcd_layers.base.deadline import Deadline

        return Deadline(timeout)

    def check_open(self) -> None:
        """The fake is always open."""

    def set_endpoints(self, addresses: list[str]) -> None:
        self.set_to.append(addresses)
        self.addresses = addresses

    @property
    def has_credentials(self) -> bool:
        return False

    def add_close_hook(self, hook: Callable[[], None]) -> None:
        self.hooks.append(hook)

    def add_endpoint_listener(self, listener: Callable[[], None]) -> None:
        self.hooks.append(listener)


def make_client(conn: RecordingConnection) -> Client:
    """A Client whose connection is the recording fake (no server, no network)."""
    return Client.from_connection(cast(Connection, conn))


BAD_CALLS: list[tuple[str, Callable[[Client], object], type[Exception]]] = [
    ("member_add int", lambda c: c.member_add(5), TypeError),  # type: ignore[arg-type]
    ("member_add no url", lambda c: c.member_add([]), ValueError),
    ("member_add no port", lambda c: c.member_add(["http://127.0.0.1"]), ValueError),
    ("member_add path", lambda c: c.member_add(["http://h:1/x"]), ValueError),
    ("member_add scheme", lambda c: c.member_add(["ftp://h:1"]), ValueError),
    ("member_add learner", lambda c: c.member_add(["http://h:1"], learner=1), TypeError),  # type: ignore[arg-type]
    ("member_remove str", lambda c: c.member_remove("1"), TypeError),  # type: ignore[arg-type]
    ("member_remove 0", lambda c: c.member_remove(0), ValueError),
    ("member_remove -1", lambda c: c.member_remove(-1), ValueError),
    ("member_remove big", lambda c: c.member_remove(2**64), ValueError),
    ("member_update urls", lambda c: c.member_update(1, [b"http://h:1"]), TypeError),  # type: ignore[list-item]
    ("member_promote bool", lambda c: c.member_promote(True), TypeError),
    ("member_list timeout", lambda c: c.member_list(timeout=0), ValueError),
    ("status endpoint", lambda c: c.status(b"h:1"), TypeError),  # type: ignore[arg-type]
    ("status no port", lambda c: c.status("h"), ValueError),
    ("defragment timeout", lambda c: c.defragment("h:1", timeout=-1), ValueError),
    ("hash_kv revision", lambda c: c.hash_kv("h:1", -1), ValueError),
    ("move_leader 0", lambda c: c.move_leader(0), ValueError),
    ("alarm_disarm alarm", lambda c: c.alarm_disarm(1, 7), ValueError),  # type: ignore[arg-type]
    ("alarm_disarm str", lambda c: c.alarm_disarm(1, "NOSPACE"), TypeError),  # type: ignore[arg-type]
    ("snapshot target", lambda c: c.snapshot(5), TypeError),  # type: ignore[arg-type]
    ("snapshot text", lambda c: c.snapshot(io.StringIO()), TypeError),  # type: ignore[arg-type]
    ("user_add bytes", lambda c: c.user_add(b"u", "p"), TypeError),  # type: ignore[arg-type]
    ("user_add empty", lambda c: c.user_add("", "p"), errors.UserEmptyError),
    ("user_add both", lambda c: c.user_add("u", "p", no_password=True), ValueError),
    ("user_get empty", lambda c: c.user_get(""), ValueError),
    ("user_grant_role", lambda c: c.user_grant_role("u", ""), errors.RoleEmptyError),
    ("user_change_password", lambda c: c.user_change_password("u", 5), TypeError),  # type: ignore[arg-type]
    ("role_add empty", lambda c: c.role_add(""), ValueError),
    ("role_grant perm", lambda c: c.role_grant_permission("r", "k", perm=9), ValueError),  # type: ignore[arg-type]
    ("role_grant key", lambda c: c.role_grant_permission("r", 5), TypeError),  # type: ignore[arg-type]
    ("role_grant empty", lambda c: c.role_grant_permission("r", ""), errors.EmptyKeyError),
    (
        "role_grant both",
        lambda c: c.role_grant_permission("r", "k", range_end="z", prefix=True),
        ValueError,
    ),
    ("role_revoke empty", lambda c: c.role_revoke_permission("r", ""), errors.EmptyKeyError),
    ("auth_enable timeout", lambda c: c.auth_enable(timeout="1"), TypeError),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("label", "call", "error"), BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_admin_bad_arguments_raise_before_any_io(
    label: str, call: Callable[[Client], object], error: type[Exception]
) -> None:
    """A bad argument raises TypeError/ValueError (or the contract's class) and sends nothing."""
    conn = RecordingConnection()
    with pytest.raises(error):
        call(make_client(conn))
    assert conn.calls == []


def test_admin_empty_names_are_value_errors_and_server_classes() -> None:
    """An empty user or role name is both the server's error class and a ValueError."""
    with pytest.raises(errors.UserEmptyError) as user_error:
        check_user_name("")
    with pytest.raises(errors.RoleEmptyError) as role_error:
        check_role_name("")
    assert isinstance(user_error.value, ValueError)
    assert isinstance(role_error.value, ValueError)


# --- pure checks and conversions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:2380", ["http://127.0.0.1:2380"]),
        ([" https://h:1 "], ["https://h:1"]),
        (["unix://sock", "http://[::1]:2"], ["unix://sock", "http://[::1]:2"]),
    ],
)
def test_check_peer_urls_accepts_what_etcd_accepts(given: object, expected: list[str]) -> None:
    """A str is one URL; URLs are trimmed; http(s) needs host:port, unix needs neither."""
    assert check_peer_urls(given) == expected


@pytest.mark.parametrize("given", [0, 2**64 - 1, 5])
def test_check_member_id_allows_zero_only_where_asked(given: int) -> None:
    """Zero means "every member" only where allowed; every uint64 passes."""
    assert check_member_id(given, allow_zero=True) == given


@pytest.mark.parametrize(
    ("key", "range_end", "prefix", "expected"),
    [
        ("k", None, False, (b"k", b"")),
        ("a", None, True, (b"a", b"b")),
        (b"a\xff", None, True, (b"a\xff", b"b")),
        ("", None, True, (b"\x00", b"\x00")),  # every key, as etcdctl sends it
        ("a", "c", False, (b"a", b"c")),
        ("", "c", False, (b"\x00", b"c")),
    ],
)
def test_permission_range_matches_etcdctl(
    key: str | bytes, range_end: str | None, prefix: bool, expected: tuple[bytes, bytes]
) -> None:
    """Permission ranges are sent as etcdctl's role grant-permission sends them."""
    assert permission_range(key, range_end, prefix) == expected


def test_endpoints_from_members_skips_unstarted_members_and_learners() -> None:
    """Only started voting members count; schemes are stripped and duplicates dropped."""
    listed = [
        Member(1, "a", client_urls=["http://127.0.0.1:1", "https://127.0.0.1:2"]),
        Member(2, "", peer_urls=["http://127.0.0.1:9"]),  # added, never started
        Member(3, "c", client_urls=["http://127.0.0.1:3"], is_learner=True),
        Member(4, "d", client_urls=["http://127.0.0.1:1", "127.0.0.1:4"]),
    ]
    assert endpoints_from_members(listed) == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:4"]


def test_member_list_converts_members_and_asks_linearizable() -> None:
    """member_list is linearizable by default and converts every protobuf field."""
    answer = rpc_pb2.MemberListResponse(
        header=rpc_pb2.ResponseHeader(cluster_id=7, member_id=1),
        members=[
            rpc_pb2.Member(
                ID=1, name="a", peerURLs=["http://p:1"], clientURLs=["http://c:1"], isLearner=True
            )
        ],
    )
    conn = RecordingConnection({MEMBER_LIST.path: [answer]})
    response = make_client(conn).member_list()
    assert response.members == [Member(1, "a", ["http://p:1"], ["http://c:1"], True)]
    assert response.header.cluster_id == 7
    (_path, request, idempotent, _address), *_ = conn.calls
    assert isinstance(request, rpc_pb2.MemberListRequest)
    assert request.linearizable
    assert idempotent


def test_role_get_converts_permissions() -> None:
    """role_get returns each permission's type, key and range end."""
    answer = rpc_pb2.AuthRoleGetResponse(
        perm=[auth_pb2.Permission(permType=auth_pb2.Permission.READ, key=b"a", range_end=b"b")]
    )
    conn = RecordingConnection({ROLE_GET.path: [answer]})
    response = make_client(conn).role_get("r")
    assert response.perm == [RolePermission(Permission.READ, b"a", b"b")]
    assert response.permissions is response.perm


def test_alarm_disarm_of_every_member_disarms_each_listed_alarm() -> None:
    """Member 0 lists the alarms and deactivates each matching one, as clientv3 does for 0/NONE."""
    listed = rpc_pb2.AlarmResponse(
        alarms=[
            rpc_pb2.AlarmMember(memberID=1, alarm=rpc_pb2.NOSPACE),
            rpc_pb2.AlarmMember(memberID=2, alarm=rpc_pb2.CORRUPT),
            rpc_pb2.AlarmMember(memberID=3, alarm=rpc_pb2.NOSPACE),
        ]
    )
    deactivated = [
        rpc_pb2.AlarmResponse(alarms=[rpc_pb2.AlarmMember(memberID=m, alarm=rpc_pb2.NOSPACE)])
        for m in (1, 3)
    ]
    conn = RecordingConnection({ALARM.path: [listed, *deactivated]})
    response = make_client(conn).alarm_disarm(0, AlarmType.NOSPACE)
    assert response.alarms == [AlarmMember(1, AlarmType.NOSPACE), AlarmMember(3, AlarmType.NOSPACE)]
    sent = [cast(rpc_pb2.AlarmRequest, request) for _, request, _, _ in conn.calls]
    assert [r.action for r in sent] == [rpc_pb2.AlarmRequest.GET] + [
        rpc_pb2.AlarmRequest.DEACTIVATE
    ] * 2
    assert [(r.memberID, r.alarm) for r in sent[1:]] == [(1, rpc_pb2.NOSPACE), (3, rpc_pb2.NOSPACE)]
    assert [idempotent for _, _, idempotent, _ in conn.calls] == [True, False, False]


def test_sync_endpoints_sets_client_urls_of_started_members() -> None:
    """sync_endpoints replaces the endpoints with the members' client URLs, schemes stripped."""
    answer = rpc_pb2.MemberListResponse(
        members=[
            rpc_pb2.Member(ID=1, name="a", clientURLs=["http://127.0.0.1:1"]),
            rpc_pb2.Member(ID=2, name="b", clientURLs=["https://127.0.0.1:2"]),
        ]
    )
    conn = RecordingConnection({MEMBER_LIST.path: [answer]})
    assert make_client(conn).sync_endpoints() == ["127.0.0.1:1", "127.0.0.1:2"]
    assert conn.set_to == [["127.0.0.1:1", "127.0.0.1:2"]]


def test_sync_endpoints_never_leaves_the_client_without_endpoints() -> None:
    """A member list with no usable client URL raises and keeps the endpoints as they were."""
    answer = rpc_pb2.MemberListResponse(members=[rpc_pb2.Member(ID=2, peerURLs=["http://p:1"])])
    conn = RecordingConnection({MEMBER_LIST.path: [answer]})
    with pytest.raises(errors.UnavailableError):
        make_client(conn).sync_endpoints()
    assert conn.set_to == []
    assert conn.addresses == ["127.0.0.1:2379"]


# --- snapshot verification --------------------------------------------------------------------


def stream_of(data: bytes, chunk: int) -> Iterator[tuple[int, bytes]]:
    """The messages etcd sends for `data`: chunks with the bytes remaining, then the sha256."""
    for start in range(0, len(data), chunk):
        blob = data[start : start + chunk]
        yield len(data) - start - len(blob), blob
    yield 0, hashlib.sha256(data).digest()


def verify(messages: list[tuple[int, bytes]]) -> bytes:
    """Feed every message to a fresh verifier and return its verdict."""
    verifier = SnapshotVerifier()
    for remaining, blob in messages:
        verifier.feed(remaining, blob)
    return verifier.finish()


@given(data=st.binary(min_size=1, max_size=2048), chunk=st.integers(min_value=1, max_value=700))
@example(data=b"x" * 64, chunk=32)  # a database that is a whole number of chunks
def test_snapshot_verifier_accepts_every_sound_stream(data: bytes, chunk: int) -> None:
    """A complete stream verifies, and its digest is the data's sha256."""
    verifier = SnapshotVerifier()
    for remaining, blob in stream_of(data, chunk):
        verifier.feed(remaining, blob)
    assert verifier.finish() == hashlib.sha256(data).digest()
    assert verifier.received == len(data)


@given(
    data=st.binary(min_size=2, max_size=512),
    chunk=st.integers(min_value=1, max_value=64),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_snapshot_verifier_refuses_any_corrupted_byte(
    data: bytes, chunk: int, position: int, flip: int
) -> None:
    """One changed byte anywhere in the data or the digest fails the checksum."""
    messages = list(stream_of(data, chunk))
    index = position % len(messages)
    remaining, blob = messages[index]
    at = position % len(blob)
    messages[index] = (remaining, blob[:at] + bytes([blob[at] ^ flip]) + blob[at + 1 :])
    with pytest.raises(errors.SnapshotError, match="checksum mismatch"):
        verify(messages)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (lambda m: m[:-2], "ended after"),  # the last data chunk and the digest are missing
        (lambda m: m[:-1], "without its sha256"),  # only the digest is missing
        (lambda m: [], "before any data"),
        (lambda m: [*m, (0, b"x")], "after its checksum"),
        (lambda m: [*m[:-1], (0, m[-1][1][:16])], "sha256 was expected"),
        (lambda m: [m[0], m[2], m[3]], "inconsistent"),  # a chunk skipped mid-stream
    ],
)
def test_snapshot_verifier_refuses_truncated_or_disordered_streams(
    cut: Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]], match: str
) -> None:
    """A stream cut short, missing its digest, or out of order raises SnapshotError."""
    messages = cut(list(stream_of(b"0123456789" * 10, 32)))
    with pytest.raises(errors.SnapshotError, match=match):
        verify(messages)


def test_snapshot_error_is_an_etcd_error() -> None:
    """A bad snapshot is reported in the package's hierarchy."""
    assert issubclass(errors.SnapshotError, errors.EtcdError)
    assert hashlib.sha256().digest_size == SHA256_SIZE


# --- snapshot sinks ------------------------------------------------------------------------


def write_then_fail(target: Path, data: bytes) -> None:
    """Write `data` through a sink, then fail as a bad stream would, before commit()."""
    with SnapshotSink(target) as sink:
        sink.write(data)
        raise errors.SnapshotError("stream cut")


def test_snapshot_sink_renames_onto_the_path_only_when_committed(tmp_path: Path) -> None:
    """A committed sink leaves exactly the target file, with every byte written."""
    target = tmp_path / "snap.db"
    with SnapshotSink(SnapshotSink.check_target(str(target))) as sink:
        sink.write(b"abc")
        assert not target.exists()
        sink.write(b"def")
        sink.commit()
    assert target.read_bytes() == b"abcdef"
    assert sink.written == 6
    assert list(tmp_path.iterdir()) == [target]


def test_snapshot_sink_leaves_nothing_after_an_error(tmp_path: Path) -> None:
    """Leaving the block without commit removes the temp file and never creates the path."""
    target = tmp_path / "snap.db"
    with pytest.raises(errors.SnapshotError):
        write_then_fail(target, b"partial")
    assert list(tmp_path.iterdir()) == []


def test_snapshot_sink_keeps_an_existing_file_after_an_error(tmp_path: Path) -> None:
    """A failed snapshot does not replace a good earlier one at the same path."""
    target = tmp_path / "snap.db"
    target.write_bytes(b"good")
    with pytest.raises(errors.SnapshotError):
        write_then_fail(target, b"bad")
    assert target.read_bytes() == b"good"
    assert list(tmp_path.iterdir()) == [target]


def test_snapshot_sink_writes_a_file_object_as_it_goes() -> None:
    """A binary file object receives the bytes directly."""
    buffer = io.BytesIO()
    with SnapshotSink(SnapshotSink.check_target(buffer)) as sink:
        sink.write(b"abc")
        sink.commit()
    assert buffer.getvalue() == b"abc"


def test_snapshot_sink_refuses_a_directory_path_without_a_name() -> None:
    """A path naming no file is refused before anything is opened."""
    with pytest.raises(ValueError, match="name a file"):
        SnapshotSink.check_target("")
