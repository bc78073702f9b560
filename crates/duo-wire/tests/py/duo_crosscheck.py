"""Cross-check helper for duoprov-duo-wire: computes, with Duo's official Python client
(duo-client), the canonical string, Authorization header and exact wire request for each
request description read as JSON from stdin, and writes the results as JSON to stdout.

Driven by crates/duo-wire/tests/crosscheck.rs; the cases are generated (seeded) on the Rust side.
Nothing is sent over the network: the client's _make_request is replaced by a recorder.
"""
import email.utils
import hashlib
import json
import sys

import duo_client
import duo_client.client as dc

_DATE = [None]
_CANON = []


def _fixed_date(*_args, **_kwargs):
    return _DATE[0]


email.utils.formatdate = _fixed_date

_orig_canonicalize = dc.canonicalize


def _recording_canonicalize(*args, **kwargs):
    c = _orig_canonicalize(*args, **kwargs)
    _CANON.append(c)
    return c


dc.canonicalize = _recording_canonicalize


def _params_dict(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            if isinstance(d[k], list):
                d[k].append(v)
            else:
                d[k] = [d[k], v]
        else:
            d[k] = v
    return d


def run_case(case):
    variant = case["variant"]
    if variant == "v2-sha1":
        sig_version, digestmod = 2, hashlib.sha1
    elif variant == "v2-sha512":
        sig_version, digestmod = 2, hashlib.sha512
    elif variant == "v4":
        sig_version, digestmod = 4, hashlib.sha512
    elif variant == "v5":
        sig_version, digestmod = 5, hashlib.sha512
    else:
        raise ValueError(variant)
    client = duo_client.Admin(case["ikey"], case["skey"], case["host"],
                              sig_version=sig_version, digestmod=digestmod)
    captured = {}

    def _record(method, uri, body, headers):
        captured["method"] = method
        captured["uri"] = uri
        captured["body"] = body
        captured["headers"] = headers
        return None, None

    client._make_request = _record
    _DATE[0] = case["date"]
    del _CANON[:]
    headers = dict(case["headers"]) if case["headers"] else None
    # Admin.api_call does not forward additional_headers; call the base Client's (Admin only
    # adds account_id, which these cases do not use).
    params = case["json"] if case.get("json") is not None else _params_dict(case["params"])
    dc.Client.api_call(client, case["method"], case["path"], params,
                       additional_headers=headers)
    if len(_CANON) != 1:
        raise RuntimeError("expected one canonicalize call, got %d" % len(_CANON))
    body = captured["body"]
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    hdrs = []
    for k, v in captured["headers"].items():
        k = k.decode("ascii") if isinstance(k, bytes) else k
        v = v.decode("ascii") if isinstance(v, bytes) else v
        hdrs.append([k, v])
    return {
        "canonical": _CANON[0],
        "method": captured["method"],
        "uri": captured["uri"],
        "body": body,
        "headers": hdrs,
    }


def main():
    cases = json.load(sys.stdin)
    out = [run_case(c) for c in cases]
    json.dump({"duo_client_version": duo_client.__version__ if hasattr(duo_client, "__version__") else "?",
               "results": out}, sys.stdout)


if __name__ == "__main__":
    main()
