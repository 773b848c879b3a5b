#!/usr/bin/env python3
"""Records conformance transcripts from a real Consul agent.

Each scenario below is a list of HTTP exchanges; the recorder sends them to the agent and
writes one JSON file per scenario in the transcript format of `tests/conformance/`
(see `tests/conformance.rs`): the request (path and body as templates: `{{prefix}}`, and
`{{name}}` for values captured by earlier steps; a capture spec ending in `|upper`
takes the value upper-cased, one ending in `|next` the number after it), the response's status, its
`Content-Type`, `Location` and `X-Consul-*` headers, its raw body, and the timings.

The agent must be a single dev agent of the version to emulate (1.10.12), on loopback:

    consul agent -dev -client 127.0.0.1 -http-port 8500
    python3 tools/record_conformance.py http://127.0.0.1:8500 --out tests/conformance
    python3 tools/record_conformance.py http://127.0.0.1:8500 --only url_filter

Paths are sent byte for byte (http.client, no normalisation). The scenarios write only
under their own random prefix, and destroy the sessions they create.
"""
import argparse
import http.client
import json
import os
import random
import re
import string
import sys
import time
import urllib.parse

KEPT_HEADERS = ("content-type", "location")


class Recorder:
    def __init__(self, addr, name, description, server=None):
        u = urllib.parse.urlparse(addr if "://" in addr else "http://" + addr)
        self.host, self.port = u.hostname, u.port or 8500
        self.name = name
        rnd = "".join(random.choice(string.hexdigits.lower()[:16]) for _ in range(6))
        self.prefix = "conformance/%s/%s" % (name, rnd)
        self.vars = {"prefix": self.prefix}
        self.steps = []
        self.start = time.monotonic()
        self.doc = {"name": name, "description": description, "consul_version": None,
                    "prefix": self.prefix}
        if server:
            self.doc["server"] = server

    def fill(self, s):
        return re.sub(r"\{\{(\w+)\}\}", lambda m: self.vars[m.group(1)], s)

    def call(self, method, path, body=None, token=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {}
        if token:
            headers["X-Consul-Token"] = token
        data = None
        if body is not None:
            data = body.encode("utf-8")
            headers["Content-Length"] = str(len(data))
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(data)
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        return r.status, r.getheaders(), raw

    def step(self, label, method, path, body=None, capture=None, token=None, setup=False):
        at = (time.monotonic() - self.start) * 1000
        t0 = time.monotonic()
        status, headers, raw = self.call(method, self.fill(path),
                                         None if body is None else self.fill(body),
                                         None if token is None else self.fill(token))
        elapsed = (time.monotonic() - t0) * 1000
        kept = {k: v for k, v in headers
                if k.lower() in KEPT_HEADERS or k.lower().startswith("x-consul-")}
        text = raw.decode("utf-8", errors="replace")
        request = {"method": method, "path": path, "body": body}
        if token is not None:
            request["token"] = token
        step = {"label": label, "at_ms": round(at, 1), "request": request,
                "response": {"status": status, "headers": kept, "body": text},
                "elapsed_ms": round(elapsed, 1)}
        if setup:
            step["setup"] = True
        if capture:
            step["capture"] = capture
            for var, spec in capture.items():
                self.vars[var] = extract(spec, headers, text)
        self.steps.append(step)
        return status, text

    def fault(self, label, fault, method, path, body=None, token=None):
        """A fault made on the real agent by this request; a replay makes `fault` with the
        test server's fault injection instead of sending the request."""
        self.step(label, method, path, body, token=token)
        self.steps[-1]["fault"] = fault

    def note(self, text):
        self.steps.append({"note": text})

    def document(self, version):
        self.doc["consul_version"] = version
        self.doc["steps"] = self.steps
        return self.doc


def extract(spec, headers, body):
    if spec.endswith("|upper"):
        return extract(spec[:-len("|upper")], headers, body).upper()
    if spec.endswith("|next"):
        return str(int(extract(spec[:-len("|next")], headers, body)) + 1)
    if spec.startswith("header:"):
        name = spec[len("header:"):].lower()
        return next(v for k, v in headers if k.lower() == name)
    assert spec.startswith("json:"), spec
    v = json.loads(body)
    for part in re.findall(r"\.(\w+)|\[(\d+)\]", spec[len("json:"):]):
        v = v[part[0]] if part[0] else v[int(part[1])]
    return v if isinstance(v, str) else json.dumps(v)


# ----------------------------------------------------------------------------------------
# scenarios
# ----------------------------------------------------------------------------------------
def url_filter(r):
    """Consul's URL filter: a rune Go's unicode.IsPrint rejects in the decoded path."""
    r.step("a printable key is written", "PUT", "/v1/kv/{{prefix}}/ok", "v")
    for label, seg in [("U+202E right-to-left override (format)", "a%E2%80%AEb"),
                       ("NUL", "a%00b"), ("tab", "a%09b"), ("DEL U+007F", "a%7Fb"),
                       ("U+00A0 no-break space", "a%C2%A0b"), ("U+2003 em space", "a%E2%80%83b"),
                       ("U+200B zero-width space (format)", "a%E2%80%8Bb"),
                       ("U+E000 private use", "a%EE%80%80b"), ("U+0378 unassigned", "a%CD%B8b")]:
        r.step("GET with %s: 400, empty body" % label, "GET", "/v1/kv/{{prefix}}/" + seg)
    r.step("PUT is filtered too", "PUT", "/v1/kv/{{prefix}}/a%E2%80%AEb", "v")
    r.step("DELETE is filtered too", "DELETE", "/v1/kv/{{prefix}}/a%E2%80%AEb")
    r.step("printable: ASCII space", "GET", "/v1/kv/{{prefix}}/a%20b")
    r.step("printable: e-acute", "GET", "/v1/kv/{{prefix}}/a%C3%A9b")
    r.step("invalid UTF-8 counts as U+FFFD, printable", "GET", "/v1/kv/{{prefix}}/a%FFb")
    r.step("the query is not checked", "GET", "/v1/kv/{{prefix}}/ok?x=%E2%80%AE&raw")
    r.step("every endpoint: status", "GET", "/v1/status/leader%E2%80%AE")
    r.step("every endpoint: unknown path", "GET", "/v1/nope%E2%80%AE")
    r.step("before the path-cleaning redirect", "GET", "/v1/kv//{{prefix}}/a%E2%80%AE")
    r.step("a txn carries keys in its body, not filtered", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/rlo\u202ex", "Value": "dg=="}}]')
    r.step("so such a key can be written but not read", "GET",
           "/v1/kv/{{prefix}}/rlo%E2%80%AEx")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def txn_limits(r):
    """The operation limit and the non-KV operations of /v1/txn."""
    op = '{"KV": {"Verb": "check-not-exists", "Key": "{{prefix}}/none"}}'
    r.step("64 operations are accepted", "PUT", "/v1/txn", "[" + ",".join([op] * 64) + "]")
    r.step("65 are refused with 413", "PUT", "/v1/txn", "[" + ",".join([op] * 65) + "]")
    r.step("129 are refused with 413", "PUT", "/v1/txn", "[" + ",".join([op] * 129) + "]")
    r.step("a type error is reported before the count", "PUT", "/v1/txn",
           "[" + ",".join([op] * 65) + ',{"KV": {"Verb": "get", "Key": 1}}]')
    node = r.doc["server"]["node_name"]
    r.step("Node get of the agent's node", "PUT", "/v1/txn",
           '[{"Node": {"Verb": "get", "Node": {"Node": "%s"}}}]' % node)
    r.step("Check get of its serfHealth check", "PUT", "/v1/txn",
           '[{"Check": {"Verb": "get", "Check": {"Node": "%s", "CheckID": "serfHealth"}}}]' % node)
    r.step("Node, Service, Check gets of unknown objects: 409 with Errors", "PUT", "/v1/txn",
           '[{"Node": {"Verb": "get", "Node": {"Node": "no-such-node"}}},'
           ' {"Service": {"Verb": "get", "Node": "%s", "Service": {"ID": "nosvc"}}},'
           ' {"Check": {"Verb": "get", "Check": {"Node": "%s", "CheckID": "nocheck"}}}]' % (node, node))
    r.step("an unknown Node verb is a write error (no read metadata)", "PUT", "/v1/txn",
           '[{"Node": {"Verb": "bogus", "Node": {"Node": "%s"}}}]' % node)
    r.step("a Session operation is an unknown field: 400", "PUT", "/v1/txn",
           '[{"Session": {"Verb": "delete", "Session": {"ID": "11111111-2222-3333-4444-555555555555"}}}]')
    r.step("an unknown field in a KV operation: 400", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "get", "Key": "{{prefix}}/a", "Bogus": 1}}]')
    r.step("an empty operation does nothing", "PUT", "/v1/txn", "[{}]")
    r.step("keys differing in case: the last one counts", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "get", "Key": "", "key": "{{prefix}}/none"}}]')


def session_create_decoding(r):
    """How the body of /v1/session/create is decoded and checked."""
    def create(label, body, read=True):
        status, text = r.step(label, "PUT", "/v1/session/create", body,
                              capture={"s": "json:.ID"} if read else None)
        if read and status == 200:
            r.step("read back", "GET", "/v1/session/info/{{s}}")
            r.step("destroy", "PUT", "/v1/session/destroy/{{s}}")
    create("empty NodeChecks and ServiceChecks read back as []",
           '{"TTL": "30s", "NodeChecks": [], "ServiceChecks": []}')
    create("Checks [null] keeps the default serfHealth", '{"Checks": [null]}')
    create("Checks [] empties NodeChecks", '{"Checks": []}')
    create("NodeChecks null reads back null", '{"NodeChecks": null}')
    create("duplicate keys differing in case: the last one wins", '{"TTL": "10s", "ttl": "20s"}')
    create("LockDelay of another type counts as 0", '{"LockDelay": true}')
    create("LockDelay below 1000 is seconds", '{"LockDelay": 2}')
    create("Node \"\" is refused", '{"Node": ""}', read=False)
    create("Must provide Node comes first", '{"Node": "", "Behavior": "bogus"}', read=False)
    create("Behavior before TTL", '{"TTL": "bogus", "Behavior": "bogus"}', read=False)
    create("an empty check ID", '{"NodeChecks": [""]}', read=False)
    create("an unknown check", '{"Checks": ["bogus"]}', read=False)
    create("a service check", '{"ServiceChecks": [{"ID": "x"}]}', read=False)
    create("the first type error in document order", '{"TTL": true, "Behavior": 1}', read=False)
    create("Behavior's Go type", '{"Behavior": 1}', read=False)
    create("a bad LockDelay string is reported after type errors",
           '{"LockDelay": "abc", "ID": 1}', read=False)
    create("a bad LockDelay string", '{"LockDelay": "abc"}', read=False)
    create("CreateIndex is a uint64", '{"CreateIndex": "x"}', read=False)
    create("ServiceChecks elements are objects", '{"ServiceChecks": ["x"]}', read=False)
    create("not an object", '"x"', read=False)
    create("an array", "[]", read=False)
    r.step("decode errors come before the datacenter", "PUT", "/v1/session/create?dc=dc2",
           '{"TTL": true}')
    r.step("the datacenter before Must provide Node", "PUT", "/v1/session/create?dc=dc2",
           '{"Node": ""}')


def session_id_case(r):
    """Session IDs are looked up ignoring case; KV keeps the ID as it was sent."""
    r.step("create", "PUT", "/v1/session/create", '{"TTL": "30s", "LockDelay": "0s"}',
           capture={"s": "json:.ID", "S": "json:.ID|upper"})
    r.step("info by the upper-cased ID", "GET", "/v1/session/info/{{S}}")
    r.step("renew by the upper-cased ID", "PUT", "/v1/session/renew/{{S}}")
    r.step("acquire with the upper-cased ID", "PUT", "/v1/kv/{{prefix}}/a?acquire={{S}}", "v")
    r.step("the key holds the ID as sent", "GET", "/v1/kv/{{prefix}}/a")
    r.step("acquire with the lower-case ID: another holder", "PUT",
           "/v1/kv/{{prefix}}/a?acquire={{s}}", "v")
    r.step("release with the lower-case ID: not the holder", "PUT",
           "/v1/kv/{{prefix}}/a?release={{s}}", "v")
    r.step("txn lock with the upper-cased ID", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "lock", "Key": "{{prefix}}/b", "Session": "{{S}}"}}]')
    r.step("destroy by the upper-cased ID", "PUT", "/v1/session/destroy/{{S}}")
    r.step("its locks are released", "GET", "/v1/kv/{{prefix}}/?recurse")
    r.step("it is gone", "GET", "/v1/session/info/{{s}}")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def kv_query_checks(r):
    """The order in which Consul checks query parameters of KV requests."""
    r.step("a write, so that the KV index is past the zero-value index 1", "PUT",
           "/v1/kv/{{prefix}}/w", "v")
    r.step("conflicting flags before parsing cas", "PUT", "/v1/kv/{{prefix}}/a?cas=abc&acquire=x", "v")
    r.step("conflicting flags name the whole query", "PUT",
           "/v1/kv/{{prefix}}/a?flags=%2B5&cas=x&acquire=y", "v")
    r.step("flags with a sign: ParseUint", "PUT", "/v1/kv/{{prefix}}/a?flags=%2B5", "v")
    r.step("a raw + is a space", "PUT", "/v1/kv/{{prefix}}/a?flags=+5", "v")
    r.step("flags before the datacenter", "PUT", "/v1/kv/{{prefix}}/a?flags=abc&dc=dc2", "v")
    r.step("the datacenter before the missing session", "PUT",
           "/v1/kv/{{prefix}}/a?acquire=&dc=dc2", "v")
    r.step("the missing session", "PUT", "/v1/kv/{{prefix}}/a?acquire=", "v")
    r.step("DELETE recurse with cas: conflicting", "DELETE", "/v1/kv/{{prefix}}/a?recurse&cas=0")
    r.step("before parsing cas and the datacenter", "DELETE",
           "/v1/kv/{{prefix}}/a?recurse&cas=abc&dc=dc2")
    r.step("cas before the datacenter", "DELETE", "/v1/kv/{{prefix}}/a?cas=abc&dc=dc2")
    r.step("consistency flags before wait", "GET", "/v1/kv/{{prefix}}/a?stale&consistent&wait=1x")
    r.step("a session read error keeps the query metadata", "GET", "/v1/session/list?dc=dc2")
    r.step("so does a bad session ID", "GET", "/v1/session/info/abc")
    r.step("a KV read error does not", "GET", "/v1/kv/{{prefix}}/a?dc=dc2")
    r.step("a blocking read names its backend", "GET", "/v1/kv/{{prefix}}/a?index=1&wait=10ms")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def mux_paths(r):
    """Go's ServeMux: trailing-slash redirects and empty 404s."""
    r.step("/v1/kv redirects to /v1/kv/", "GET", "/v1/kv")
    r.step("with an empty body for a PUT", "PUT", "/v1/kv", "v")
    r.step("and a DELETE", "DELETE", "/v1/kv")
    r.step("a path cleaned to /v1/kv", "GET", "/v1/kv/{{prefix}}%2F..%2F..%2F..")
    r.step("/v1/session/info", "GET", "/v1/session/info")
    r.step("keeps the query", "GET", "/v1/session/info?x=1")
    r.step("/v1/session/renew", "PUT", "/v1/session/renew")
    r.step("/v1/session/destroy", "PUT", "/v1/session/destroy")
    r.step("/v1/session/node", "GET", "/v1/session/node")
    r.step("/v1/session/ is no endpoint", "GET", "/v1/session/")
    r.step("nor /v1/session/list/extra", "GET", "/v1/session/list/extra")
    r.step("nor /v1/session/create/x", "PUT", "/v1/session/create/x")
    r.step("nor /v1/status/leader/", "GET", "/v1/status/leader/")
    r.step("nor an unknown path", "GET", "/v1/nope")
    r.step("paths are case-sensitive", "GET", "/v1/KV/{{prefix}}/a")


def txn_error_texts(r):
    """Texts of failed transactions: keys quoted with Go's %q, the first decode error."""
    sess = "11111111-2222-3333-4444-555555555555"
    r.step("unlock of a key holding U+202E: %q escapes it", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "unlock", "Key": "{{prefix}}/rlo\u202ex/", "Session": "%s",'
           ' "Value": "//79"}}]' % sess)
    r.step("cas on a key holding U+00A0, U+200B and U+E000", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "cas", "Key": "{{prefix}}/a\u00a0b\u200bc\ue000", "Index": 7,'
           ' "Value": "YQ=="}}]')
    r.step("printable non-ASCII stays as it is", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "unlock", "Key": "{{prefix}}/\u00e9\u4e2d", "Session": "%s"}}]'
           % sess)
    r.step("a bad Flags before a bad Value: the Flags error", "PUT", "/v1/txn",
           '[{"KV": {"Flags": 1.5, "Key": "{{prefix}}/a/", "Session": "%s", "Value": "YQ",'
           ' "Verb": "lock"}}]' % sess)
    r.step("a bad Index before a Value of the wrong type", "PUT", "/v1/txn",
           '[{"KV": {"Index": "5", "Key": "{{prefix}}/a", "Value": 12, "Verb": "cas"}}]')
    r.step("a bad Value before a bad Flags: the Value error", "PUT", "/v1/txn",
           '[{"KV": {"Value": "!!!", "Flags": -1, "Key": "{{prefix}}/a", "Verb": "set"}}]')
    r.step("an unknown field after a bad Value: the Value error", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/a", "Value": 12, "Bogus": 1}}]')
    r.step("an unknown field before a bad Value: the unknown field", "PUT", "/v1/txn",
           '[{"KV": {"Bogus": 1, "Verb": "set", "Key": "{{prefix}}/a", "Value": 12}}]')
    r.step("the first operation's error before the second's", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/a", "Value": "YQ"}},'
           ' {"KV": {"Verb": "set", "Key": "{{prefix}}/b", "Flags": -1}}]')
    r.step("a bad KV member before a bad field of a later operation", "PUT", "/v1/txn",
           '[{"KV": "x"}, {"KV": {"Verb": "set", "Key": "{{prefix}}/b", "Index": 1.5}}]')
    r.step("null leaves a string field as it was", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/n", "key": null, "Value": "YQ=="}}]')
    r.step("Value may be an array of bytes", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/arr", "Value": [104, 105]}}]')
    r.step("read back", "GET", "/v1/kv/{{prefix}}/arr?raw")
    r.step("a byte out of range", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/arr", "Value": [256]}}]')
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def kv_tree_tombstones(r):
    """A recursive delete leaves one tombstone, for its prefix; a key's tombstone outlives
    the key being written again."""
    sess = "11111111-2222-3333-4444-555555555555"
    r.step("a key outside the tree, so the table index can move past it", "PUT",
           "/v1/kv/{{prefix}}-other", "0")
    r.step("txn cas with Index 0 creates a key in the tree", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "cas", "Key": "{{prefix}}/x/b", "Index": 0, "Value": "YQ=="}}]')
    r.step("a second key, deleted and written again", "PUT", "/v1/kv/{{prefix}}/y/k", "1")
    r.step("deleted: its tombstone", "DELETE", "/v1/kv/{{prefix}}/y/k")
    r.step("the prefix answers the tombstone's index", "GET", "/v1/kv/{{prefix}}/y/?keys")
    r.step("written again", "PUT", "/v1/kv/{{prefix}}/y/k", "2")
    r.step("recursive delete of the tree", "DELETE", "/v1/kv/{{prefix}}%2F?recurse")
    r.step("a write after it", "PUT", "/v1/kv/{{prefix}}-other", "1")
    r.step("its index is the table's", "GET", "/v1/kv/{{prefix}}-other",
           capture={"t": "header:X-Consul-Index"})
    r.step("the tree's prefix answers the delete's index", "GET", "/v1/kv/{{prefix}}/?keys")
    r.step("a shorter prefix holding a newer key answers that key's index", "GET",
           "/v1/kv/{{prefix}}?recurse")
    r.step("a prefix inside the tree answers the table's index (keys)", "GET",
           "/v1/kv/{{prefix}}/x/b?keys")
    r.step("(recurse)", "GET", "/v1/kv/{{prefix}}/x/?recurse")
    r.step("and does not block below it", "GET",
           "/v1/kv/{{prefix}}/x/b?keys&index={{t}}&wait=500ms")
    r.step("a prefix inside the tree holding an older tombstone answers it", "GET",
           "/v1/kv/{{prefix}}/y/?keys")
    r.step("a txn delete-tree leaves one tombstone too", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/z/q/r", "Value": "YQ=="}}]')
    r.step("txn delete-tree", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "delete-tree", "Key": "{{prefix}}/z/"}}]')
    r.step("a write after it", "PUT", "/v1/kv/{{prefix}}-other", "2")
    r.step("index of that write", "GET", "/v1/kv/{{prefix}}-other")
    r.step("inside the txn's tree: the table's index", "GET", "/v1/kv/{{prefix}}/z/q/?keys")
    r.step("the txn's tree: its delete", "GET", "/v1/kv/{{prefix}}/z/?keys")
    r.step("a recursive delete of nothing", "DELETE", "/v1/kv/{{prefix}}/none/?recurse")
    r.step("leaves no tombstone and the table alone", "GET", "/v1/kv/{{prefix}}/none/?keys")
    r.step("a failed txn delete-tree leaves nothing", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "set", "Key": "{{prefix}}/w/a", "Value": "YQ=="}}]')
    r.step("delete-tree then a failing unlock", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "delete-tree", "Key": "{{prefix}}/w/"}},'
           ' {"KV": {"Verb": "unlock", "Key": "{{prefix}}/w/a", "Session": "%s"}}]' % sess)
    r.step("the key is still there", "GET", "/v1/kv/{{prefix}}/w/?recurse")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")
    r.step("clean up the other key", "DELETE", "/v1/kv/{{prefix}}-other")


def failed_writes_take_an_index(r):
    """Writes Consul's state store refuses after Raft logged them use up an index; writes
    refused before Raft do not. Each case: read a key's index i, make the failing write,
    write the key, and block on it at index i + 1 (at once when the failing write took i + 1,
    until the wait ends when it did not)."""
    cases = [
        ("destroy of a malformed ID", "PUT", "/v1/session/destroy/abc", None, True),
        ("destroy of an ID that is not hex", "PUT",
         "/v1/session/destroy/11111111-2222-3333-4444-55555555555x", None, True),
        ("session create on an unknown node", "PUT", "/v1/session/create",
         '{"Node": "no-such-node"}', True),
        ("session create with an unknown check", "PUT", "/v1/session/create",
         '{"Checks": ["nocheck"]}', True),
        ("session create with an empty check ID", "PUT", "/v1/session/create",
         '{"NodeChecks": [""]}', True),
        ("session create with an unknown service check", "PUT", "/v1/session/create",
         '{"ServiceChecks": [{"ID": "nocheck"}]}', True),
        ("acquire with an unknown session", "PUT",
         "/v1/kv/{{prefix}}/lock?acquire=11111111-2222-3333-4444-555555555555", "v", True),
        ("acquire with a malformed session", "PUT", "/v1/kv/{{prefix}}/lock?acquire=abc", "v",
         True),
        ("a failing txn", "PUT", "/v1/txn",
         '[{"KV": {"Verb": "cas", "Key": "{{prefix}}/lock", "Index": 99999999}}]', True),
        ("not: a session TTL that does not parse", "PUT", "/v1/session/create", '{"TTL": "5x"}',
         False),
        ("not: an invalid Behavior", "PUT", "/v1/session/create", '{"Behavior": "bogus"}',
         False),
        ("not: destroy without an ID", "PUT", "/v1/session/destroy/", None, False),
        ("not: renew of a malformed ID", "PUT", "/v1/session/renew/abc", None, False),
        ("not: a txn with an unknown verb", "PUT", "/v1/txn",
         '[{"KV": {"Verb": "bogus", "Key": "{{prefix}}/k"}}]', False),
    ]
    for n, (label, method, path, body, _takes) in enumerate(cases):
        r.step("write the key", "PUT", "/v1/kv/{{prefix}}/k", "a%d" % n)
        r.step("its index", "GET", "/v1/kv/{{prefix}}/k",
               capture={"next": "header:X-Consul-Index|next"})
        r.step(label, method, path, body)
        r.step("write the key again", "PUT", "/v1/kv/{{prefix}}/k", "b%d" % n)
        r.step("block at its index + 1", "GET", "/v1/kv/{{prefix}}/k?index={{next}}&wait=500ms")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def session_node_health(r):
    """A node's serfHealth check going critical invalidates the sessions that carry it, and
    only those: sessions created with no checks survive it. The fault steps are made on the
    real agent by re-registering its node's serfHealth check through the catalog; a replay
    makes them with the test server's node-health fault instead."""
    node = r.doc["server"]["node_name"]
    plain = '"TTL": "30s", "LockDelay": "0s", "Behavior": "delete"'
    none = '"Checks": [], "NodeChecks": [], "ServiceChecks": []'
    r.step("a session with Consul's default checks (the node's serfHealth)", "PUT",
           "/v1/session/create", '{"Name": "default", %s}' % plain, capture={"sd": "json:.ID"})
    r.step("a session with no checks at all", "PUT", "/v1/session/create",
           '{"Name": "none", %s, %s}' % (plain, none), capture={"sn": "json:.ID"})
    r.step("NodeChecks [] alone", "PUT", "/v1/session/create",
           '{"Name": "node-checks-empty", "TTL": "30s", "NodeChecks": []}',
           capture={"se": "json:.ID"})
    r.step("the default checks, Behavior release and the default lock-delay", "PUT",
           "/v1/session/create", '{"Name": "release", "TTL": "30s"}', capture={"sr": "json:.ID"})
    r.step("the default session locks a key", "PUT", "/v1/kv/{{prefix}}/default?acquire={{sd}}",
           "d")
    r.step("the check-less session locks a key", "PUT", "/v1/kv/{{prefix}}/none?acquire={{sn}}",
           "n")
    r.step("the releasing session locks a key", "PUT",
           "/v1/kv/{{prefix}}/release?acquire={{sr}}", "r")
    r.step("each session shows its checks", "GET", "/v1/session/list")
    r.step("the check-less session's own view", "GET", "/v1/session/info/{{sn}}")
    critical = ('{"Node": "%s", "Address": "127.0.0.1", "Check": {"Node": "%s", '
                '"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "critical", '
                '"Output": "the node failed"}}' % (node, node))
    r.fault("the node's serfHealth goes critical", {"node_health": "critical"}, "PUT",
            "/v1/catalog/register", critical)
    r.step("only the check-less sessions are left", "GET", "/v1/session/list")
    r.step("the default session's key is deleted, the releasing one's released, the "
           "check-less one's still held", "GET", "/v1/kv/{{prefix}}/?recurse")
    r.step("the released key is under its session's lock-delay", "PUT",
           "/v1/kv/{{prefix}}/release?acquire={{sn}}", "n")
    r.step("the invalidated session is gone", "GET", "/v1/session/info/{{sd}}")
    r.step("renewing it: 404", "PUT", "/v1/session/renew/{{sd}}")
    r.step("a session with the default checks cannot be created now", "PUT",
           "/v1/session/create", '{%s}' % plain)
    r.step("nor one naming serfHealth", "PUT", "/v1/session/create",
           '{"TTL": "30s", "NodeChecks": ["serfHealth"]}')
    r.step("a check-less one can", "PUT", "/v1/session/create", '{%s, %s}' % (plain, none),
           capture={"sc": "json:.ID"})
    r.step("destroy it", "PUT", "/v1/session/destroy/{{sc}}")
    passing = critical.replace('"critical"', '"passing"').replace("the node failed",
                                                                  "Agent alive and reachable")
    r.fault("the node's serfHealth passes again", {"node_health": "passing"}, "PUT",
            "/v1/catalog/register", passing)
    r.step("sessions with the default checks can be created again", "PUT",
           "/v1/session/create", '{%s}' % plain, capture={"sa": "json:.ID"})
    r.step("destroy it", "PUT", "/v1/session/destroy/{{sa}}")
    r.step("destroy the check-less session", "PUT", "/v1/session/destroy/{{sn}}")
    r.step("destroy the other", "PUT", "/v1/session/destroy/{{se}}")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def txn_check_session(r):
    """Fenced writes: a transaction whose check-session operation on a lock key makes Consul
    apply the other operations only while that session holds the key; which operations
    answer with a result; what a failed check says; the operation limit counts the checks."""
    plain = ('"TTL": "30s", "LockDelay": "0s", "Behavior": "delete", "Checks": [], '
             '"NodeChecks": [], "ServiceChecks": []')
    r.step("the holder's session", "PUT", "/v1/session/create", '{%s}' % plain,
           capture={"s": "json:.ID"})
    r.step("another session", "PUT", "/v1/session/create", '{%s}' % plain,
           capture={"o": "json:.ID"})
    r.step("the holder locks the key", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "lock", "Key": "{{prefix}}/lock", "Value": "aA==", '
           '"Session": "{{s}}"}}]')
    check = '{"KV": {"Verb": "check-session", "Key": "{{prefix}}/lock", "Session": "%s"}}'
    r.step("a fenced set: the check and the write both answer", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/a", "Value": "MQ=="}}'),
           capture={"a": "json:.Results[1].KV.ModifyIndex"})
    r.step("every verb in one fenced transaction: which answer with a result", "PUT",
           "/v1/txn",
           "[%s, %s]" % (check % "{{s}}", ", ".join([
               '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/b", "Value": "Mg=="}}',
               '{"KV": {"Verb": "cas", "Key": "{{prefix}}/data/a", "Value": "Mw==", '
               '"Index": {{a}}}}',
               '{"KV": {"Verb": "get", "Key": "{{prefix}}/data/b"}}',
               '{"KV": {"Verb": "delete", "Key": "{{prefix}}/data/none"}}',
               '{"KV": {"Verb": "check-not-exists", "Key": "{{prefix}}/data/none"}}',
               '{"KV": {"Verb": "get-tree", "Key": "{{prefix}}/data/"}}',
               '{"KV": {"Verb": "delete-cas", "Key": "{{prefix}}/data/none", "Index": 5}}',
           ])))
    r.step("read back", "GET", "/v1/kv/{{prefix}}/data/?recurse",
           capture={"b": "json:[1].ModifyIndex"})
    r.step("a check and a check-index only: a read-only transaction", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}",
                         '{"KV": {"Verb": "check-index", "Key": "{{prefix}}/data/b", '
                         '"Index": {{b}}}}'))
    r.step("delete and delete-tree behind the check", "PUT", "/v1/txn",
           "[%s, %s, %s]" % (check % "{{s}}",
                             '{"KV": {"Verb": "delete-cas", "Key": "{{prefix}}/data/b", '
                             '"Index": {{b}}}}',
                             '{"KV": {"Verb": "delete-tree", "Key": "{{prefix}}/data/"}}'))
    r.step("another session's check fails, nothing is written", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{o}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/c", "Value": "NA=="}}'))
    r.step("a failing check and a failing write: both reported", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{o}}",
                         '{"KV": {"Verb": "cas", "Key": "{{prefix}}/data/c", "Value": "NA==", '
                         '"Index": 7}}'))
    r.step("nothing was written", "GET", "/v1/kv/{{prefix}}/data/?recurse")
    r.step("the check on a key nobody holds", "PUT", "/v1/txn",
           "[%s, %s]" % (check.replace("/lock", "/free") % "{{s}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/c", "Value": "NA=="}}'))
    sets = ['{"KV": {"Verb": "set", "Key": "{{prefix}}/many/%d", "Value": "eA=="}}' % i
            for i in range(64)]
    r.step("one check and 63 writes: 64 operations, accepted", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}", ", ".join(sets[:63])))
    r.step("one check and 64 writes: 65 operations, refused", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}", ", ".join(sets)))
    r.step("the holder's session ends: its key goes", "PUT", "/v1/session/destroy/{{s}}")
    r.step("the stale holder's fenced write is refused", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/a", "Value": "NQ=="}}'))
    r.step("the other session takes the key", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "lock", "Key": "{{prefix}}/lock", "Value": "bw==", '
           '"Session": "{{o}}"}}]')
    r.step("the stale holder is refused while another holds the key", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{s}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/a", "Value": "NQ=="}}'))
    r.step("the new holder's fenced write is applied", "PUT", "/v1/txn",
           "[%s, %s]" % (check % "{{o}}",
                         '{"KV": {"Verb": "set", "Key": "{{prefix}}/data/a", "Value": "Ng=="}}'))
    r.step("read back", "GET", "/v1/kv/{{prefix}}/data/a")
    r.step("destroy the other session", "PUT", "/v1/session/destroy/{{o}}")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def session_node_deregistered(r):
    """A node deregistered from the catalog (an operator's force-leave or catalog deregister,
    a client agent's graceful leave, reaping, a failed server's removal) ends every session of
    the node at once, check-less ones too, and refuses new sessions until it is registered
    again. The fault steps are made on the real agent through the catalog; a replay makes them
    with the test server's deregistration fault instead."""
    node = r.doc["server"]["node_name"]
    none = ('"TTL": "30s", "LockDelay": "0s", "Behavior": "delete", "Checks": [], '
            '"NodeChecks": [], "ServiceChecks": []')
    r.step("a session with no checks", "PUT", "/v1/session/create",
           '{"Name": "none", %s}' % none, capture={"sn": "json:.ID"})
    r.step("it locks a key", "PUT", "/v1/kv/{{prefix}}/none?acquire={{sn}}", "n")
    r.fault("the node is deregistered", {"node": "deregistered"}, "PUT",
            "/v1/catalog/deregister", '{"Node": "%s"}' % node)
    r.step("the session is gone", "GET", "/v1/session/info/{{sn}}")
    r.step("and its key with it (Behavior delete)", "GET", "/v1/kv/{{prefix}}/?recurse")
    r.step("renewing it: 404", "PUT", "/v1/session/renew/{{sn}}")
    r.step("no session can be created for the node now", "PUT", "/v1/session/create",
           '{%s}' % none)
    register = ('{"Node": "%s", "Address": "127.0.0.1", "Check": {"Node": "%s", '
                '"CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", '
                '"Output": "Agent alive and reachable"}}' % (node, node))
    r.fault("the node is registered again (as the agent's anti-entropy sync does)",
            {"node": "registered"}, "PUT", "/v1/catalog/register", register)
    r.step("sessions can be created again", "PUT", "/v1/session/create", '{%s}' % none,
           capture={"s2": "json:.ID"})
    r.step("destroy it", "PUT", "/v1/session/destroy/{{s2}}")
    r.step("clean up", "DELETE", "/v1/kv/{{prefix}}?recurse")


def acl_token_deleted(r):
    """Needs an agent with ACLs on, default policy deny, and CONSUL_MGMT_TOKEN set. A token
    deleted while its session holds a lock ends no session: the lock stays held until its TTL,
    and every request with the token is refused (renewals, fenced writes). Reading the agent
    needs agent:read."""
    mgmt = "{{mgmt}}"
    rules = ('key_prefix \\"locks/\\" { policy = \\"write\\" }\\n'
             'session_prefix \\"\\" { policy = \\"write\\" }')
    r.step("setup: policy allowing locks/ and sessions", "PUT", "/v1/acl/policy",
           '{"Name": "locks-%s", "Rules": "%s"}' % (r.prefix[-6:], rules),
           capture={"pol": "json:.ID"}, token=mgmt, setup=True)
    r.step("setup: token with that policy", "PUT", "/v1/acl/token",
           '{"Policies": [{"ID": "{{pol}}"}]}',
           capture={"tok": "json:.SecretID", "acc": "json:.AccessorID"}, token=mgmt,
           setup=True)
    r.step("the token may not read the agent", "GET", "/v1/agent/self", token="{{tok}}")
    none = ('"TTL": "30s", "LockDelay": "0s", "Behavior": "delete", "Checks": [], '
            '"NodeChecks": [], "ServiceChecks": []')
    r.step("a session with the token", "PUT", "/v1/session/create", '{%s}' % none,
           capture={"s": "json:.ID"}, token="{{tok}}")
    r.step("it locks a key", "PUT", "/v1/kv/locks/{{prefix}}/a?acquire={{s}}", "v",
           token="{{tok}}")
    r.fault("an operator deletes the token", {"acl_token_deleted": "tok"}, "DELETE",
            "/v1/acl/token/{{acc}}", token=mgmt)
    r.step("renewing with it: ACL not found", "PUT", "/v1/session/renew/{{s}}",
           token="{{tok}}")
    r.step("a fenced write with it: ACL not found", "PUT", "/v1/txn",
           '[{"KV": {"Verb": "check-session", "Key": "locks/{{prefix}}/a", "Session": "{{s}}"}},'
           ' {"KV": {"Verb": "set", "Key": "locks/{{prefix}}/b", "Value": "eA=="}}]',
           token="{{tok}}")
    r.step("the session lives on", "GET", "/v1/session/info/{{s}}", token=mgmt)
    r.step("and still holds the key", "GET", "/v1/kv/locks/{{prefix}}/a", token=mgmt)
    r.step("destroy it", "PUT", "/v1/session/destroy/{{s}}", token=mgmt)
    r.step("clean up", "DELETE", "/v1/kv/locks/{{prefix}}?recurse", token=mgmt)


SCENARIOS = {
    "url_filter": url_filter,
    "txn_limits": txn_limits,
    "session_create_decoding": session_create_decoding,
    "session_id_case": session_id_case,
    "kv_query_checks": kv_query_checks,
    "mux_paths": mux_paths,
    "txn_error_texts": txn_error_texts,
    "kv_tree_tombstones": kv_tree_tombstones,
    "failed_writes_take_an_index": failed_writes_take_an_index,
    "session_node_health": session_node_health,
    "txn_check_session": txn_check_session,
    "session_node_deregistered": session_node_deregistered,
    "acl_token_deleted": acl_token_deleted,
}


# The management token of an agent with ACLs on (`acl_token_deleted`).
MGMT = os.environ.get("CONSUL_MGMT_TOKEN", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("addr", help="the agent's HTTP address, like http://127.0.0.1:8500")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "conformance"),
                    help="directory to write NAME.json files to")
    ap.add_argument("--only", action="append", choices=sorted(SCENARIOS),
                    help="record only this scenario (repeatable)")
    a = ap.parse_args()
    probe = Recorder(a.addr, "probe", "")
    _, _, raw = probe.call("GET", "/v1/agent/self", token=MGMT or None)
    cfg = json.loads(raw)["Config"]
    version = cfg["Version"]
    for name in a.only or sorted(SCENARIOS):
        fn = SCENARIOS[name]
        server = ({"node_name": cfg["NodeName"]}
                  if name in ("txn_limits", "session_node_health", "session_node_deregistered")
                  else None)
        if name == "acl_token_deleted":
            server = {"acl_default_policy": "deny", "management_token": MGMT,
                      "note": "steps marked setup create a policy and a token through Consul's "
                              "ACL API; a server without that API starts with the equivalent "
                              "token; the fault step deletes the token"}
        r = Recorder(a.addr, name, fn.__doc__.strip(), server)
        if name == "acl_token_deleted":
            r.vars["mgmt"] = MGMT
            r.doc["vars"] = {"mgmt": MGMT}
        fn(r)
        path = os.path.join(a.out, name + ".json")
        with open(path, "w") as f:
            json.dump(r.document(version), f, indent=1, ensure_ascii=False)
            f.write("\n")
        print("%s: %d steps -> %s" % (name, len(r.steps), path))


if __name__ == "__main__":
    sys.exit(main())
