"""Client options from etcdctl's environment and Go's clientv3/yaml files, valid and bad."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcd_layers import Client
from etcd_layers.config import (
    ETCDCTL_VARIABLES,
    GO_YAML_KEYS,
    ClientOptions,
    options_from_config,
    options_from_env,
    with_overrides,
)
from etcd_layers.config.goformat import format_duration, parse_bool, parse_duration, parse_int

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# --- Go's syntax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("5s", 5 * 10**9),
        ("500ms", 500 * 10**6),
        ("1m30s", 90 * 10**9),
        ("1h2m3.5s", 3723 * 10**9 + 5 * 10**8),
        ("-1.5h", -5400 * 10**9),
        ("+.5s", 5 * 10**8),
        ("5.s", 5 * 10**9),
        ("1ns", 1),
        ("1us", 1000),
        ("1\u00b5s", 1000),  # micro sign
        ("1\u03bcs", 1000),  # Greek mu
        ("0.000000001s", 1),
        ("0.0000000019s", 1),  # digits past a nanosecond are dropped
        ("1s1s", 2 * 10**9),  # Go adds repeated units
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
    ],
)
def test_parse_duration_reads_go_syntax(text: str, nanoseconds: int) -> None:
    """Go's time.ParseDuration forms read to the same nanoseconds."""
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid duration"),
        ("-", "invalid duration"),
        (".s", "invalid duration"),
        ("5", "missing unit"),
        ("00", "missing unit"),
        ("5x", "unknown unit 'x'"),
        ("5 s", "unknown unit ' s'"),
        ("1h-5m", "unknown unit 'h-'"),
        ("s", "invalid duration"),
        ("\u0665s", "invalid duration"),  # a non-ASCII digit
        ("9223372036854775808ns", "out of range"),
        ("2562048h", "out of range"),
    ],
)
def test_parse_duration_refuses_what_go_refuses(text: str, message: str) -> None:
    """What Go's parser refuses raises ValueError, with Go's reason."""
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@given(INT64)
@example(0)
@example(1500)
@example(-(2**63))
@example(3600 * 10**9)
def test_format_duration_round_trips_through_parse(nanoseconds: int) -> None:
    """Every int64 Go writes as a Duration reads back unchanged."""
    assert parse_duration(format_duration(nanoseconds)) == nanoseconds


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [(0, "0s"), (1, "1ns"), (1500, "1.5\u00b5s"), (10**6, "1ms"), (90 * 10**9, "1m30s"),
     (3600 * 10**9, "1h0m0s"), (-(5 * 10**8), "-500ms"), (3723 * 10**9 + 5 * 10**8, "1h2m3.5s")],
)  # fmt: skip
def test_format_duration_writes_as_go(nanoseconds: int, text: str) -> None:
    """Durations are written as Go's Duration.String writes them."""
    assert format_duration(nanoseconds) == text


def test_parse_bool_and_int_follow_strconv() -> None:
    """Go's strconv spellings of booleans and base-0 integers are read, others refused."""
    assert [parse_bool(t) for t in ("1", "t", "TRUE", "True", "0", "f", "FALSE")] == [
        True, True, True, True, False, False, False,
    ]  # fmt: skip
    assert [parse_int(t) for t in ("10", "-10", "010", "0x1f", "0b11", "0o17", "0")] == [
        10, -10, 8, 31, 3, 15, 0,
    ]  # fmt: skip
    for bad in ("yes", "on", ""):
        with pytest.raises(ValueError, match="invalid boolean"):
            parse_bool(bad)
    for bad in ("", "1.5", "09", "1e3", "0x", "9223372036854775808"):
        with pytest.raises(ValueError, match="integer"):
            parse_int(bad)


# --- etcdctl's environment ------------------------------------------------------------------

CERTS = {"ETCDCTL_CACERT": "ca.pem", "ETCDCTL_CERT": "c.pem", "ETCDCTL_KEY": "k.pem"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        ({"HOME": "/root", "ETCD_LAYERS_X": "1"}, {}),  # only ETCDCTL_* is read
        ({"ETCDCTL_ENDPOINTS": "a:1, b:2"}, {"endpoints": ["a:1", "b:2"]}),
        ({"ETCDCTL_ENDPOINTS": ""}, {}),  # etcdctl: an empty variable is unset
        ({"ETCDCTL_USER": "root:s3:cret"}, {"username": "root", "password": "s3:cret"}),
        ({"ETCDCTL_USER": "root", "ETCDCTL_PASSWORD": "pw"},
         {"username": "root", "password": "pw"}),
        ({"ETCDCTL_USER": "root"}, {"username": "root"}),  # with_overrides wants a password
        ({"ETCDCTL_DIAL_TIMEOUT": "1m30s"}, {"dial_timeout": 90.0}),
        ({"ETCDCTL_COMMAND_TIMEOUT": "500ms"}, {"timeout": 0.5}),
        ({"ETCDCTL_KEEPALIVE_TIME": "2s", "ETCDCTL_KEEPALIVE_TIMEOUT": "6s"},
         {"keepalive_time": 2.0, "keepalive_timeout": 6.0}),
        ({"ETCDCTL_KEEPALIVE_TIME": "0"}, {}),  # Go: 0 turns pings off, as Client's default
        ({"ETCDCTL_MAX_REQUEST_BYTES": "1024", "ETCDCTL_MAX_RECV_BYTES": "0x800"},
         {"max_call_send_msg_size": 1024, "max_call_recv_msg_size": 2048}),
        ({"ETCDCTL_MAX_REQUEST_BYTES": "0"}, {}),  # etcdctl: 0 means the default limit
        ({"ETCDCTL_API": "3", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY": "false"}, {}),
        ({"ETCDCTL_INSECURE_TRANSPORT": "true"}, {}),
        (CERTS, {"ca_cert": "ca.pem", "cert": "c.pem", "key": "k.pem"}),
        ({**CERTS, "ETCDCTL_ENDPOINTS": "a:1"},
         {"ca_cert": "ca.pem", "cert": "c.pem", "key": "k.pem", "endpoints": ["a:1"]}),
        ({"ETCDCTL_CACERT": "ca.pem", "ETCDCTL_INSECURE_TRANSPORT": "false"},
         {"ca_cert": "ca.pem"}),
        ({"ETCDCTL_INSECURE_TRANSPORT": "false"}, {"endpoints": ["https://127.0.0.1:2379"]}),
        ({"ETCDCTL_INSECURE_TRANSPORT": "0", "ETCDCTL_ENDPOINTS": "a:1,https://b:2"},
         {"endpoints": ["https://a:1", "https://b:2"]}),
        ({"ETCDCTL_ENDPOINTS": "https://a:1"}, {"endpoints": ["https://a:1"]}),
        ({"ETCDCTL_ENDPOINTS": "http://a:1", "ETCDCTL_INSECURE_TRANSPORT": "false"},
         {"endpoints": ["http://a:1"]}),  # Go drops TLS for an http:// endpoint
    ],
)  # fmt: skip
def test_options_from_env_maps_etcdctl_variables(
    environ: dict[str, str], expected: dict[str, object]
) -> None:
    """Each etcdctl variable becomes its Client keyword, read by etcdctl's rules."""
    assert options_from_env(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"ETCDCTL_ENDPIONTS": "a:1"}, "unknown etcdctl variable ETCDCTL_ENDPIONTS"),
        ({"ETCDCTL_FOO": ""}, "ETCDCTL_FOO"),  # unknown even when empty
        ({"ETCDCTL_INSECURE_SKIP_TLS_VERIFY": "true"}, "ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true"),
        ({"ETCDCTL_INSECURE_SKIP_TLS_VERIFY": "maybe"}, "ETCDCTL_INSECURE_SKIP_TLS_VERIFY"),
        ({"ETCDCTL_DISCOVERY_SRV": "example.com"}, "ETCDCTL_DISCOVERY_SRV is not supported"),
        ({"ETCDCTL_DISCOVERY_SRV_NAME": "x"}, "ETCDCTL_DISCOVERY_SRV_NAME is not supported"),
        ({"ETCDCTL_INSECURE_DISCOVERY": "true"}, "ETCDCTL_INSECURE_DISCOVERY is not supported"),
        ({"ETCDCTL_AUTH_JWT_TOKEN": "t"}, "ETCDCTL_AUTH_JWT_TOKEN is not supported"),
        ({"ETCDCTL_WRITE_OUT": "json"}, "ETCDCTL_WRITE_OUT is not supported"),
        ({"ETCDCTL_HEX": "true"}, "ETCDCTL_HEX is not supported"),
        ({"ETCDCTL_DEBUG": "true"}, "ETCDCTL_DEBUG is not supported"),
        ({"ETCDCTL_WATCH_KEY": "k"}, "ETCDCTL_WATCH_KEY is not supported"),
        ({"ETCDCTL_API": "2"}, "ETCDCTL_API"),
        ({"ETCDCTL_DIAL_TIMEOUT": "5"}, "ETCDCTL_DIAL_TIMEOUT: missing unit"),
        ({"ETCDCTL_DIAL_TIMEOUT": "0"}, "ETCDCTL_DIAL_TIMEOUT: must be > 0"),
        ({"ETCDCTL_COMMAND_TIMEOUT": "-1s"}, "ETCDCTL_COMMAND_TIMEOUT: must be > 0"),
        ({"ETCDCTL_KEEPALIVE_TIME": "-1s"}, "ETCDCTL_KEEPALIVE_TIME: must be > 0"),
        ({"ETCDCTL_KEEPALIVE_TIMEOUT": "1y"}, "ETCDCTL_KEEPALIVE_TIMEOUT: unknown unit"),
        ({"ETCDCTL_MAX_REQUEST_BYTES": "-1"}, "ETCDCTL_MAX_REQUEST_BYTES: must not be negative"),
        ({"ETCDCTL_MAX_RECV_BYTES": "2MiB"}, "ETCDCTL_MAX_RECV_BYTES: invalid integer"),
        ({"ETCDCTL_INSECURE_TRANSPORT": "no"}, "ETCDCTL_INSECURE_TRANSPORT: invalid boolean"),
        ({"ETCDCTL_ENDPOINTS": "a:1,,b:2"}, "ETCDCTL_ENDPOINTS has an empty endpoint"),
        ({"ETCDCTL_CERT": "c.pem"}, "ETCDCTL_CERT and ETCDCTL_KEY"),
        ({"ETCDCTL_USER": "a:b", "ETCDCTL_PASSWORD": "c"}, "ETCDCTL_USER holds a password"),
        ({"ETCDCTL_USER": ":pw"}, "ETCDCTL_USER has an empty user name"),
        ({"ETCDCTL_USER": "root:"}, "ETCDCTL_USER gives an empty password"),
        ({"ETCDCTL_ENDPOINTS": "a:1,https://b:2"}, "ETCDCTL_ENDPOINTS: mixes TLS and plaintext"),
        ({**CERTS, "ETCDCTL_ENDPOINTS": "http://a:1"}, "certificate files would go unused"),
    ],
)
def test_options_from_env_refuses_with_the_variable_named(
    environ: dict[str, str], message: str
) -> None:
    """An unknown, unsupported or bad variable raises ValueError naming it; none is ignored."""
    with pytest.raises(ValueError, match=message):
        options_from_env(environ)


def test_options_from_env_never_shows_a_password() -> None:
    """Messages about credentials do not repeat them."""
    with pytest.raises(ValueError, match="ETCDCTL_USER") as raised:
        options_from_env({"ETCDCTL_USER": "alice:hunter2", "ETCDCTL_PASSWORD": "hunter3"})
    assert "hunter" not in str(raised.value)


def test_etcdctl_variables_cover_every_global_flag() -> None:
    """Every etcdctl global flag's variable (FlagToEnv of ctl.go's flags) is known."""
    flags = ("endpoints debug write-out hex dial-timeout command-timeout keepalive-time "
             "keepalive-timeout max-request-bytes max-recv-bytes insecure-transport "
             "insecure-discovery insecure-skip-tls-verify cert key cacert auth-jwt-token user "
             "password discovery-srv discovery-srv-name")  # fmt: skip
    variables = {"ETCDCTL_" + flag.upper().replace("-", "_") for flag in flags.split(" ")}
    assert variables <= ETCDCTL_VARIABLES


# --- Go's clientv3/yaml ---------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.yaml"
    path.write_text(text, encoding="utf-8")
    return path


FILES = "cert-file: c.pem\nkey-file: k.pem\ntrusted-ca-file: ca.pem\n"
PLAIN = "insecure-transport: true\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PLAIN + "endpoints: [a:1, 'b:2']", {"endpoints": ["a:1", "b:2"]}),
        (PLAIN + "dial-timeout: 5000000000", {"dial_timeout": 5.0}),  # Go: integer nanoseconds
        (PLAIN + "dial-timeout: 1m30s", {"dial_timeout": 90.0}),
        (PLAIN + "dial-timeout: 5", {"dial_timeout": 5e-9}),  # 5 ns, as Go reads it
        (PLAIN + "auto-sync-interval: 30s\ndial-keep-alive-time: 2s\n"
         "dial-keep-alive-timeout: 6000000000",
         {"auto_sync_interval": 30.0, "keepalive_time": 2.0, "keepalive_timeout": 6.0}),
        (PLAIN + "dial-timeout: 0\nauto-sync-interval: 0", {}),  # Go's zero: not set
        (PLAIN + "max-call-send-msg-size: 1024\nMaxCallRecvMsgSize: 4096",
         {"max_call_send_msg_size": 1024, "max_call_recv_msg_size": 4096}),
        (PLAIN + "username: root\npassword: pw", {"username": "root", "password": "pw"}),
        (PLAIN + "reject-old-cluster: true", {"reject_old_cluster": True}),
        (PLAIN + "username: ''\ndial-timeout: null\nendpoints:", {}),  # empty and null: unset
        (PLAIN + "reject-old-cluster: false\ninsecure-skip-tls-verify: false\ntoken: ''\n"
         "permit-without-stream: false\nmax-unary-retries: 0\nca-file: ''\n"
         "backoff-jitter-fraction: 0.0\nbackoff-wait-between: 0", {}),
        (FILES + "endpoints: [a:1]",
         {"cert": "c.pem", "key": "k.pem", "ca_cert": "ca.pem", "endpoints": ["a:1"]}),
        ("trusted-ca-file: ca.pem", {"ca_cert": "ca.pem"}),
        ("endpoints: [a:1, 'https://b:2']", {"endpoints": ["https://a:1", "https://b:2"]}),
        ("", {"endpoints": ["https://127.0.0.1:2379"]}),  # Go's default: TLS, system roots
        ("endpoints: ['http://a:1']", {"endpoints": ["http://a:1"]}),  # Go: plaintext
        (PLAIN + "endpoints: ['https://a:1']", {"endpoints": ["https://a:1"]}),
    ],
)  # fmt: skip
def test_options_from_config_maps_go_keys(
    tmp_path: Path, text: str, expected: dict[str, object]
) -> None:
    """Each clientv3/yaml key becomes its Client keyword, read as Go's decoder reads it."""
    assert options_from_config(_config(tmp_path, text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("endpoint: [a:1]", "unknown key endpoint"),
        ("Endpoints: [a:1]\nfoo: 1", "unknown key Endpoints, foo"),
        ("- a:1", "must be a mapping"),
        ("endpoints: [a:1", "not valid YAML"),
        ("endpoints: a:1", "endpoints: must be a list of strings"),
        ("endpoints: []", "endpoints: must not be empty"),
        ("endpoints: [1]", "endpoints: must be a list of strings"),
        (PLAIN + "dial-timeout: -1", "dial-timeout: must be > 0"),
        (PLAIN + "dial-timeout: 5x", "dial-timeout: unknown unit"),
        (PLAIN + "dial-timeout: 1.5", "dial-timeout: must be integer nanoseconds"),
        (PLAIN + "dial-timeout: true", "dial-timeout: must be integer nanoseconds"),
        (PLAIN + "max-call-send-msg-size: -1", "max-call-send-msg-size: must not be negative"),
        (PLAIN + "max-call-recv-msg-size: 2MiB", "max-call-recv-msg-size: must be an integer"),
        (PLAIN + "password: 1234\nusername: a", "password: must be a string"),
        (PLAIN + "insecure-transport: 1", "insecure-transport: must be true or false"),
        (
            PLAIN + "insecure-skip-tls-verify: true",
            "insecure-skip-tls-verify: true is not supported",
        ),
        (PLAIN + "reject-old-cluster: 1", "reject-old-cluster: must be true or false"),
        (PLAIN + "token: abc", "token: JWT token authentication is not supported"),
        (PLAIN + "ca-file: ca.pem", "ca-file: .*use trusted-ca-file"),
        (PLAIN + "permit-without-stream: true", "permit-without-stream: not supported"),
        (PLAIN + "max-unary-retries: 3", "max-unary-retries: not supported"),
        (PLAIN + "max-unary-retries: false", "max-unary-retries: not supported"),
        (PLAIN + "backoff-wait-between: 1s", "backoff-wait-between: not supported"),
        (PLAIN + "backoff-jitter-fraction: 0.1", "backoff-jitter-fraction: not supported"),
        ("cert-file: c.pem", "cert-file and key-file"),
        (PLAIN + "trusted-ca-file: ca.pem", "insecure-transport: true conflicts"),
        ("endpoints: [a:1, 'http://b:2']", "endpoints: mixes TLS and plaintext"),
        (FILES + "endpoints: ['http://b:2']", "certificate files would go unused"),
    ],
)
def test_options_from_config_refuses_with_the_key_named(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unknown key, a bad value or a setting Client cannot honour raises ValueError naming it."""
    path = _config(tmp_path, text)
    with pytest.raises(ValueError, match=message) as raised:
        options_from_config(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("name", ["missing.yaml", "."])
def test_options_from_config_names_an_unreadable_file(tmp_path: Path, name: str) -> None:
    """A missing or unreadable file raises ValueError naming it."""
    path = tmp_path / name
    with pytest.raises(ValueError, match="cannot read client configuration") as raised:
        options_from_config(path)
    assert str(path) in str(raised.value)


def test_go_yaml_keys_are_every_json_tag_of_go_config() -> None:
    """The keys are Go's: clientv3.Config's json tags, yamlConfig's, and the untagged sizes."""
    tags = {"endpoints", "auto-sync-interval", "dial-timeout", "dial-keep-alive-time",
            "dial-keep-alive-timeout", "username", "password", "token", "reject-old-cluster",
            "permit-without-stream", "max-unary-retries", "backoff-wait-between",
            "backoff-jitter-fraction", "insecure-transport", "insecure-skip-tls-verify",
            "cert-file", "key-file", "trusted-ca-file", "ca-file"}  # fmt: skip
    sizes = {"max-call-send-msg-size", "max-call-recv-msg-size", "MaxCallSendMsgSize",
             "MaxCallRecvMsgSize"}  # fmt: skip
    assert tags | sizes == GO_YAML_KEYS


# --- overrides ------------------------------------------------------------------------------


def test_with_overrides_lets_the_caller_win() -> None:
    """An override replaces the found value; None is a value too."""
    found: ClientOptions = {"endpoints": ["a:1"], "timeout": 5.0, "dial_timeout": 2.0}
    merged = with_overrides(found, {"endpoints": ["b:2"], "timeout": None}, source="S")
    assert merged == {"endpoints": ["b:2"], "timeout": None, "dial_timeout": 2.0}


def test_with_overrides_completes_the_credentials() -> None:
    """A user found without a password takes one from the overrides, else raises naming it."""
    assert with_overrides({"username": "u"}, {"password": "p"}, source="S") == {
        "username": "u",
        "password": "p",
    }
    with pytest.raises(ValueError, match="ETCDCTL_USER names a user but gives no password"):
        with_overrides({"username": "u"}, {}, source="ETCDCTL_USER")
    with pytest.raises(ValueError, match="S gives a password but no user name"):
        with_overrides({"password": "p"}, {}, source="S")


def test_client_from_env_raises_before_any_io() -> None:
    """A bad environment raises from Client.from_env without dialing anything."""
    with pytest.raises(ValueError, match="ETCDCTL_DISCOVERY_SRV"):
        Client.from_env({"ETCDCTL_DISCOVERY_SRV": "example.com"})
    with pytest.raises(ValueError, match="ETCDCTL_USER/ETCDCTL_PASSWORD names a user"):
        Client.from_env({"ETCDCTL_USER": "root"})


def test_client_from_config_raises_before_any_io(tmp_path: Path) -> None:
    """A bad file raises from Client.from_config without dialing anything."""
    with pytest.raises(ValueError, match="unknown key"):
        Client.from_config(_config(tmp_path, "nope: 1"), timeout=1.0)


def test_client_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no mapping given, the process environment is read."""
    monkeypatch.setenv("ETCDCTL_TYPO", "1")
    with pytest.raises(ValueError, match="ETCDCTL_TYPO"):
        Client.from_env()
