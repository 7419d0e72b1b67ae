"""The demo runs end to end, against its embedded cluster and against an existing one."""

from __future__ import annotations

import io
import re

import pytest

from etcd_layers import Client
from etcd_layers.__main__ import main
from etcd_layers._demo import run_demo
from etcd_layers.testing import EtcdCluster


def test_demo_embedded_tours_every_layer() -> None:
    """With no endpoints the demo starts its own cluster and shows each layer working."""
    out = io.StringIO()
    assert run_demo(None, reads=50, out=out) == 0
    text = out.getvalue()
    assert "Starting an embedded 3-member etcd cluster on loopback ... done" in text
    # namespace: each tenant reads its own value and lists only its own keys
    assert re.search(r"\| tenant-a \| get\('config'\)\s+\| a's secret", text)
    assert re.search(r"\| tenant-b \| get\('config'\)\s+\| b's secret", text)
    assert re.search(r"\| tenant-b \| get\('users/alice'\)\s+\| 0 keys", text)
    # leasing: a speed-up, a hit ratio, and the second client's write seen at once
    speedup = re.search(r"\| leasing\.wrap\(\.\.\.\)\.get \| [\d.]+ us\s+\| (\d+)x", text)
    assert speedup is not None
    assert int(speedup.group(1)) >= 10
    assert re.search(r"cache: \d+ hits, \d+ misses \(hit ratio", text)
    assert re.search(r"right after it \(cache invalidated\)\s+\| price=12", text)
    # ordering: the cut-off member's stale answer is caught and served again elsewhere
    assert "stale answer" in text
    assert "the ordering layer caught it" in text
    # the stack
    assert re.search(r"get\('profile'\)\s+\| v2", text)
    assert "no ordering violation reported" in text
    assert text.rstrip().endswith("Done.")


def test_demo_against_existing_cluster_stays_in_its_prefix(
    etcd_server: EtcdCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --endpoints the demo touches nothing outside a random prefix, and removes it."""
    with Client(etcd_server.endpoints) as cli:
        cli.put("demo-neighbour", "untouched")
        before = cli.get("demo-neighbour").kvs[0].mod_revision
        assert main(["demo", "--endpoints", ",".join(etcd_server.endpoints), "--reads", "20"]) == 0
        text = capsys.readouterr().out
        assert "Skipped: cutting a member off needs the embedded cluster" in text
        assert re.search(r"Cleaned up: removed \d+ keys under b'etcd-layers-demo/[0-9a-f]+/'", text)
        assert cli.get("etcd-layers-demo/", prefix=True).count == 0
        assert cli.get("demo-neighbour").kvs[0].mod_revision == before
