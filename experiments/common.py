"""Shared by the experiment tools (doc/experiments.md): paths, the error type, progress
lines, and the small HTTP and Prometheus-text helpers. Standard library only."""
import http.client
import json
import os
import re
import sys
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("SCHEDSIM_EXPERIMENT_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "schedsim", "experiment-venv"))


def log(msg):
    """One progress line on stderr."""
    print("experiment: " + msg, file=sys.stderr, flush=True)


class ExperimentError(Exception):
    """A problem with the experiment file or the cluster, worded for the user."""


# ---------------------------------------------------------------- HTTP helpers

def post(url, body, timeout=120):
    """POSTs JSON; returns (status, headers dict lower-case, body bytes); status 0 and the
    error text as body when the connection fails."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        conn.request("POST", u.path or "/", json.dumps(body), {"content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except OSError as e:
        return 0, {}, str(e).encode()


def scrape(url, timeout=5):
    """GETs a Prometheus text endpoint; returns {series: value} or None on failure."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        conn.request("GET", u.path)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        conn.close()
        if r.status != 200:
            return None
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def metric_sum(metrics, name, where=None):
    """Sum of every series of metric `name` (optionally whose labels contain `where`)."""
    total, found = 0.0, False
    for k, v in (metrics or {}).items():
        if k == name or k.startswith(name + "{"):
            if where and where not in k:
                continue
            total += v
            found = True
    return total if found else None
