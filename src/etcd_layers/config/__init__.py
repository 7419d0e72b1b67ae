"""Turn etcdctl's environment variables or a Go clientv3/yaml file into `Client(...)` keywords.

Pure: no gRPC and no I/O besides reading the YAML file it is given. `Client.from_env()` and
`Client.from_config()` call these functions and then `Client(...)`, which still checks every
value; a setting that `Client` cannot honour raises ValueError here instead of being ignored.

Go's rules are the reference (etcdctl's global flags and pkg/flags, client/v3/yaml/config.go):

- A variable or key at Go's zero value (an empty variable, `0`, `""`, `false`, `null`) means
  "not set", so Client's default applies: 0 durations and sizes are Go's "use the default" too.
- Transport as Go picks it: certificate files mean TLS; so does `insecure-transport: false`
  (the YAML default) or `ETCDCTL_INSECURE_TRANSPORT=false` without them, which asks for TLS
  checked against the system's roots (the endpoints get `https://` so Client does that).
  An `http://` endpoint is always plaintext and an `https://` one always TLS. Client uses one
  transport for all endpoints, so a list that would mix them raises.
- An `endpoints=` override is used as given: its own scheme and the certificate options decide.
"""

from __future__ import annotations

from etcd_layers.config._env import ETCDCTL_VARIABLES, options_from_env
from etcd_layers.config._goyaml import GO_YAML_KEYS, options_from_config
from etcd_layers.config._options import ClientOptions, with_overrides

__all__ = [
    "ETCDCTL_VARIABLES",
    "GO_YAML_KEYS",
    "ClientOptions",
    "options_from_config",
    "options_from_env",
    "with_overrides",
]
