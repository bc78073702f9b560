"""Conformance suite: drives the duoprov Duo emulator with Duo's official Python client
(duo_client.Admin) over plain HTTP, for one signature version per run, and checks that every
answer is what Duo's documentation says. Run by the Rust integration test `conformance`, which
starts the emulators and passes their coordinates in the environment:

  DUO_HOST, DUO_PORT          main emulator (rate limits off)
  DUO_RL_PORT                 second emulator with tight rate limits (same integrations)
  DUO_IKEY, DUO_SKEY          integration with every grant
  DUO_RO_IKEY, DUO_RO_SKEY    integration with "Grant read resource" only
  DUO_NG_IKEY, DUO_NG_SKEY    integration with no grant
  DUO_SIG_VERSION             5, 4 or 2
  DUO_DIGEST                  sha512 (default) or sha1 (v2 only)

Prints one line per check and exits non-zero if any failed. Secrets come from the environment
only and are never printed.
"""

import hashlib
import http.client
import json
import os
import sys
import time
import traceback
import urllib.request
import warnings

import duo_client

warnings.simplefilter("ignore", DeprecationWarning)

HOST = os.environ["DUO_HOST"]
PORT = int(os.environ["DUO_PORT"])
RL_PORT = int(os.environ["DUO_RL_PORT"])
SIG = int(os.environ["DUO_SIG_VERSION"])
DIGEST = hashlib.sha1 if os.environ.get("DUO_DIGEST") == "sha1" else hashlib.sha512
TAG = "v%d%s" % (SIG, "-sha1" if DIGEST is hashlib.sha1 else "")


def admin(ikey_var="DUO_IKEY", skey_var="DUO_SKEY", port=PORT, skey=None):
    return duo_client.Admin(
        ikey=os.environ[ikey_var],
        skey=skey if skey is not None else os.environ[skey_var],
        host=HOST,
        port=port,
        ca_certs="HTTP",
        sig_version=SIG,
        digestmod=DIGEST,
    )


A = admin()
results = []


def check(fn):
    name = fn.__name__
    try:
        fn()
        results.append((name, None))
        print("PASS %s %s" % (TAG, name), flush=True)
    except Exception:  # noqa: BLE001 - report every failure and go on
        results.append((name, traceback.format_exc()))
        print("FAIL %s %s\n%s" % (TAG, name, traceback.format_exc()), flush=True)
    return fn


def error_body(e):
    data = e.data
    if isinstance(data, dict):
        return data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)


def expect_error(call, status, code, detail=None):
    try:
        call()
    except RuntimeError as e:
        assert e.status == status, "status %r, expected %r (%s)" % (e.status, status, e)
        body = error_body(e)
        assert body["stat"] == "FAIL", body
        assert body["code"] == code, "code %r, expected %r" % (body["code"], code)
        assert str(body["code"])[:3] == str(status), body
        assert isinstance(body["message"], str) and body["message"], body
        if detail is not None:
            assert body.get("message_detail") == detail, body
        return body
    raise AssertionError("expected HTTP %d / %d, call succeeded" % (status, code))


def uname(s):
    return "%s-%s" % (TAG, s)


def is_duo_id(s, prefix):
    return (
        isinstance(s, str)
        and len(s) == 20
        and s.startswith(prefix)
        and all(c.isdigit() or ("A" <= c <= "Z") for c in s)
    )


USER_KEYS = {
    "alias1", "alias2", "alias3", "alias4", "aliases", "created", "email", "firstname", "groups",
    "is_enrolled", "last_directory_sync", "last_login", "lastname", "notes", "phones", "realname",
    "status", "tokens", "u2ftokens", "user_id", "username", "webauthncredentials",
}
GROUP_KEYS = {"desc", "group_id", "mobile_otp_enabled", "name", "push_enabled", "sms_enabled", "status", "voice_enabled"}


@check
def user_crud():
    u = A.add_user(uname("alice"), realname="Alice Liddell", email="alice@example.com",
                   firstname="Alice", lastname="Liddell", notes="n", alias1=uname("al"))
    assert USER_KEYS <= set(u), set(u) ^ USER_KEYS
    assert is_duo_id(u["user_id"], "DU"), u["user_id"]
    assert isinstance(u["created"], int) and abs(u["created"] - time.time()) < 600, u["created"]
    assert u["status"] == "active" and u["is_enrolled"] is False and u["last_login"] is None
    assert u["alias1"] == uname("al") and u["aliases"] == {"alias1": uname("al")}, u
    assert u["groups"] == [] and u["phones"] == []
    got = A.get_user_by_id(u["user_id"])
    assert got["username"] == uname("alice") and got["realname"] == "Alice Liddell"
    upd = A.update_user(u["user_id"], realname="Alice L.", status="bypass", alias2=uname("al2"))
    assert upd["realname"] == "Alice L." and upd["status"] == "bypass"
    assert upd["aliases"] == {"alias1": uname("al"), "alias2": uname("al2")}, upd["aliases"]
    upd = A.update_user(u["user_id"], alias1="")
    assert upd["alias1"] is None and upd["aliases"] == {"alias2": uname("al2")}, upd
    assert A.delete_user(u["user_id"]) == ""
    assert A.delete_user(u["user_id"]) == ""  # idempotent
    expect_error(lambda: A.get_user_by_id(u["user_id"]), 404, 40401)


@check
def duplicate_username_and_alias_rejected():
    a = A.add_user(uname("dup"), alias1=uname("dup-alias"))
    expect_error(lambda: A.add_user(uname("dup")), 400, 40002, "username")
    expect_error(lambda: A.add_user(uname("other"), alias1=uname("dup-alias")), 400, 40002, "alias1")
    expect_error(lambda: A.add_user(uname("dup-alias")), 400, 40002, "username")
    expect_error(lambda: A.update_user(a["user_id"], status="locked out"), 400, 40002, "status")
    A.delete_user(a["user_id"])


@check
def username_or_alias_lookup():
    u = A.add_user(uname("bob"), alias1=uname("robert"), alias2=uname("bobby"))
    by_name = A.get_users_by_name(uname("bob"))
    by_alias = A.get_users_by_name(uname("bobby"))
    assert [x["user_id"] for x in by_name] == [u["user_id"]], by_name
    assert [x["user_id"] for x in by_alias] == [u["user_id"]], by_alias
    assert A.get_users_by_name(uname("nobody")) == []
    many = list(A.get_users_by_names([uname("robert"), uname("nobody")]))
    assert [x["user_id"] for x in many] == [u["user_id"]], many
    by_ids = list(A.get_users_by_ids([u["user_id"]]))
    assert [x["username"] for x in by_ids] == [uname("bob")]
    A.update_user(u["user_id"], email="bob@example.org")
    by_email = A.get_user_by_email("bob@example.org")
    assert [x["user_id"] for x in by_email] == [u["user_id"]], by_email
    A.delete_user(u["user_id"])
    assert A.get_users_by_name(uname("robert")) == []


@check
def paging_across_pages():
    made = [A.add_user(uname("page%02d" % i))["user_id"] for i in range(10)]
    total = len(A.get_users())
    A.paging_limit = 3
    try:
        seen = [u["user_id"] for u in A.get_users()]
    finally:
        A.paging_limit = 100
    assert len(seen) == total and len(set(seen)) == total, (len(seen), total)
    assert set(made) <= set(seen)
    # metadata on a middle page
    resp, data = A.api_call("GET", "/admin/v1/users", {"limit": "3", "offset": "3"})
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json", resp.getheader("Content-Type")
    body = json.loads(data)
    md = body["metadata"]
    assert md["total_objects"] == total and md["prev_offset"] == 0 and md["next_offset"] == 6, md
    assert len(body["response"]) == 3
    # clamped silently
    resp, data = A.api_call("GET", "/admin/v1/users", {"limit": "100000", "offset": "0"})
    assert resp.status == 200 and len(json.loads(data)["response"]) == min(total, 300)
    last = A.get_users(limit=3, offset=total - 1)
    assert len(last) == 1
    for uid in made:
        A.delete_user(uid)


@check
def group_crud():
    g = A.create_group(uname("staff"), desc="Staff", status="active", push_enabled=True)
    assert set(g) == GROUP_KEYS, set(g) ^ GROUP_KEYS
    assert is_duo_id(g["group_id"], "DG") and g["name"] == uname("staff") and g["desc"] == "Staff"
    assert g["status"] == "Active", g
    # Duo reports the legacy factor flags as false whatever is sent.
    assert [g[k] for k in ("push_enabled", "sms_enabled", "voice_enabled", "mobile_otp_enabled")] == [False] * 4, g
    v2 = A.get_group(g["group_id"], api_version=2)
    assert v2["group_id"] == g["group_id"] and v2["name"] == uname("staff")
    v1 = A.get_group(g["group_id"], api_version=1)
    assert v1["group_id"] == g["group_id"]
    m = A.modify_group(g["group_id"], name=uname("staff2"), desc="All staff", status="bypass")
    assert m is not None
    v2 = A.get_group(g["group_id"], api_version=2)
    assert v2["name"] == uname("staff2") and v2["desc"] == "All staff" and v2["status"].lower() == "bypass", v2
    listed = [x["group_id"] for x in A.get_groups()]
    assert g["group_id"] in listed
    by_ids = A.get_groups_by_group_ids([g["group_id"]])
    assert [x["group_id"] for x in by_ids] == [g["group_id"]]
    body = expect_error(lambda: A.create_group(uname("staff2")), 400, 40003)
    assert body["message"] == "Duplicate resource", body
    expect_error(lambda: A.create_group(uname("x"), status="sleepy"), 400, 40002, "status")
    assert A.delete_group(g["group_id"]) == ""
    expect_error(lambda: A.get_group(g["group_id"], api_version=2), 404, 40401)


@check
def group_paging():
    made = [A.create_group(uname("gp%02d" % i))["group_id"] for i in range(7)]
    A.paging_limit = 2
    try:
        seen = [g["group_id"] for g in A.get_groups()]
    finally:
        A.paging_limit = 100
    assert set(made) <= set(seen) and len(seen) == len(set(seen))
    for gid in made:
        A.delete_group(gid)


@check
def memberships():
    u = A.add_user(uname("carol"))
    g1 = A.create_group(uname("g1"))
    g2 = A.create_group(uname("g2"))
    assert A.add_user_group(u["user_id"], g1["group_id"]) == ""
    assert A.add_user_group(u["user_id"], g2["group_id"]) == ""
    # already a member: Duo's 400/40004 (Grouper's captured production reply)
    body = expect_error(lambda: A.add_user_group(u["user_id"], g2["group_id"]), 400, 40004,
                        "User is already a member of the specified group")
    assert body["message"] == "Operation failed", body
    embedded = A.get_user_by_id(u["user_id"])["groups"]
    assert [x["group_id"] for x in embedded] == [g1["group_id"], g2["group_id"]], embedded
    assert GROUP_KEYS <= set(embedded[0])
    assert [x["group_id"] for x in A.get_user_groups(u["user_id"])] == [g1["group_id"], g2["group_id"]]
    members = A.get_group_users(g1["group_id"])
    assert [x["user_id"] for x in members] == [u["user_id"]], members
    expect_error(lambda: A.add_user_group(u["user_id"], "DG" + "Z" * 18), 400, 40002, "group_id")
    expect_error(lambda: A.add_user_group("DU" + "Z" * 18, g1["group_id"]), 404, 40401)
    assert A.delete_user_group(u["user_id"], g1["group_id"]) == ""
    assert A.delete_user_group(u["user_id"], g1["group_id"]) == ""  # absent: 200
    assert [x["group_id"] for x in A.get_user_by_id(u["user_id"])["groups"]] == [g2["group_id"]]
    assert A.get_group_users(g1["group_id"]) == []
    A.delete_group(g2["group_id"])
    assert A.get_user_by_id(u["user_id"])["groups"] == []
    A.delete_user(u["user_id"])
    A.delete_group(g1["group_id"])


@check
def membership_limit_of_100_groups():
    u = A.add_user(uname("joiner"))
    gids = [A.create_group(uname("lim%03d" % i))["group_id"] for i in range(101)]
    for gid in gids[:100]:
        A.add_user_group(u["user_id"], gid)
    body = expect_error(lambda: A.add_user_group(u["user_id"], gids[100]), 500, 50001)
    assert body["message"] == "Unknown internal server error", body
    assert len(list(A.get_user_groups_iterator(u["user_id"]))) == 100
    A.delete_user(u["user_id"])
    for gid in gids:
        A.delete_group(gid)


@check
def error_bad_signature():
    bad = admin(skey="X" * 40)
    expect_error(lambda: bad.get_users(limit=1), 401, 40103)


@check
def error_unknown_ikey():
    other = duo_client.Admin(ikey="DIUNKNOWNUNKNOWNUNKN", skey="Y" * 40, host=HOST, port=PORT,
                             ca_certs="HTTP", sig_version=SIG, digestmod=DIGEST)
    expect_error(lambda: other.get_users(limit=1), 401, 40102)


@check
def error_missing_credentials():
    conn = http.client.HTTPConnection(HOST, PORT, timeout=10)
    conn.request("GET", "/admin/v1/users?", headers={"Date": "Tue, 21 Aug 2012 17:29:18 -0000"})
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 401 and body["code"] == 40101 and body["stat"] == "FAIL", (r.status, body)


@check
def error_missing_grant():
    ro = admin("DUO_RO_IKEY", "DUO_RO_SKEY")
    assert isinstance(ro.get_users(limit=1), list)  # read works
    expect_error(lambda: ro.add_user(uname("nope")), 403, 40301)
    expect_error(lambda: ro.get_admins(), 403, 40301)
    ng = admin("DUO_NG_IKEY", "DUO_NG_SKEY")
    expect_error(lambda: ng.get_users(limit=1), 403, 40301)
    assert A.get_users_by_name(uname("nope")) == []


@check
def error_missing_parameter():
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/users", {}), 400, 40002, "username")
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/groups", {}), 400, 40002, "name")
    u = A.add_user(uname("needs-group"))
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/users/%s/groups" % u["user_id"], {}), 400, 40002, "group_id")
    A.delete_user(u["user_id"])


@check
def error_unknown_id():
    expect_error(lambda: A.get_user_by_id("DU" + "Q" * 18), 404, 40401)
    expect_error(lambda: A.get_user_by_id("not-an-id"), 404, 40401)
    expect_error(lambda: A.update_user("DU" + "Q" * 18, realname="x"), 404, 40401)
    expect_error(lambda: A.get_group("DG" + "Q" * 18, api_version=2), 404, 40401)
    expect_error(lambda: A.get_group_users("DG" + "Q" * 18), 404, 40401)
    expect_error(lambda: A.get_user_groups("DU" + "Q" * 18), 404, 40401)
    expect_error(lambda: A.json_api_call("GET", "/admin/v1/nothing", {}), 404, 40401)
    assert A.delete_user("DU" + "Q" * 18) == ""
    assert A.delete_group("DG" + "Q" * 18) == ""


@check
def bulk_create_and_trash():
    users = [{"username": uname("bulk%d" % i), "realname": "Bulk %d" % i} for i in range(3)]
    created = A.json_api_call("POST", "/admin/v1/users/bulk_create", {"users": json.dumps(users)})
    assert [u["username"] for u in created] == [u["username"] for u in users], created
    assert all(is_duo_id(u["user_id"], "DU") for u in created)
    # all or nothing: one duplicate rejects the whole batch
    again = [{"username": uname("bulk-new")}, {"username": uname("bulk0")}]
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/users/bulk_create", {"users": json.dumps(again)}), 400, 40002)
    assert A.get_users_by_name(uname("bulk-new")) == []
    ids = [u["user_id"] for u in created]
    A.json_api_call("POST", "/admin/v1/users/bulk_send_to_trash", {"user_id_list": json.dumps(ids[:2])})
    assert A.get_user_by_id(ids[0])["status"] == "pending deletion"
    A.json_api_call("POST", "/admin/v1/users/bulk_restore", {"user_id_list": json.dumps(ids[:1])})
    assert A.get_user_by_id(ids[0])["status"] == "active"
    assert A.get_user_by_id(ids[1])["status"] == "pending deletion"
    for uid in ids:
        A.delete_user(uid)


@check
def bulk_operations():
    u = A.add_user(uname("ops"))
    g = A.create_group(uname("ops-group"))
    ops = [
        {"method": "POST", "path": "/admin/v1/users", "body": {"username": uname("ops-new")}},
        {"method": "POST", "path": "/admin/v1/users/%s" % u["user_id"], "body": {"realname": "Ops Person"}},
        {"method": "POST", "path": "/admin/v1/users/%s/groups" % u["user_id"], "body": {"group_id": g["group_id"]}},
        {"method": "POST", "path": "/admin/v1/users", "body": {}},
    ]
    res = A.json_api_call("POST", "/admin/v1/bulk", {"operations": json.dumps(ops)})
    assert [r["stat"] for r in res] == ["OK", "OK", "OK", "FAIL"], res
    assert res[3]["code"] == 40002
    assert res[0]["response"]["username"] == uname("ops-new")
    got = A.get_user_by_id(u["user_id"])
    assert got["realname"] == "Ops Person" and [x["group_id"] for x in got["groups"]] == [g["group_id"]]
    ops2 = [
        {"method": "DELETE", "path": "/admin/v1/users/%s/groups/%s" % (u["user_id"], g["group_id"]), "body": {}},
        {"method": "DELETE", "path": "/admin/v1/users/%s" % res[0]["response"]["user_id"], "body": {}},
    ]
    params = {"operations": ops2} if SIG in (4, 5) else {"operations": json.dumps(ops2)}
    res2 = A.json_api_call("POST", "/admin/v1/bulk", params)
    assert [r["stat"] for r in res2] == ["OK", "OK"], res2
    assert A.get_user_by_id(u["user_id"])["groups"] == []
    assert A.get_users_by_name(uname("ops-new")) == []
    too_many = [{"method": "DELETE", "path": "/admin/v1/users/%s" % ("DU" + "Q" * 18), "body": {}}] * 51
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/bulk", {"operations": json.dumps(too_many)}), 400, 40002)
    A.delete_user(u["user_id"])
    A.delete_group(g["group_id"])


@check
def administrators():
    a = A.add_admin(uname("Admin One"), uname("admin1") + "@example.com", "+15555550100", None, role="Help Desk")
    assert is_duo_id(a["admin_id"], "DE") and a["role"] == "Help Desk" and a["status"] == "Active", a
    assert A.get_admin(a["admin_id"])["email"] == uname("admin1") + "@example.com"
    u = A.update_admin(a["admin_id"], name=uname("Admin 1"), role="Administrator")
    assert u["name"] == uname("Admin 1") and u["role"] == "Administrator"
    assert a["admin_id"] in [x["admin_id"] for x in A.get_admins()]
    expect_error(lambda: A.add_admin("Dup", uname("admin1") + "@example.com", None, None), 400, 40002, "email")
    assert A.delete_admin(a["admin_id"]) == ""
    expect_error(lambda: A.get_admin(a["admin_id"]), 404, 40401)


@check
def administrators_as_duoprov_drives_them():
    # What duoprov's admin-role sync sends: create with role and send_email, page through the
    # list, change the role, disable (an Owner only together with a lower role), delete.
    owner = A.json_api_call("POST", "/admin/v1/admins", {"name": uname("Owner"), "email": uname("owner") + "@example.com", "role": "Owner", "send_email": "1"})
    assert owner["role"] == "Owner" and owner["status"] == "Active", owner
    for field in ("admin_id", "email", "name", "role", "status"):
        assert isinstance(owner[field], str), (field, owner)
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/admins", {"name": "X", "email": uname("x") + "@example.com", "send_email": "maybe"}), 400, 40002, "send_email")
    expect_error(lambda: A.json_api_call("POST", "/admin/v1/admins", {"name": "X", "email": uname("y") + "@example.com", "role": "owner"}), 400, 40002, "role")
    helpers = [A.json_api_call("POST", "/admin/v1/admins", {"name": uname("H%d" % i), "email": uname("h%d" % i) + "@example.com", "role": "Help Desk"}) for i in range(3)]
    paged = [a["admin_id"] for a in A.get_admins_iterator()]
    two = A.get_admins(limit=2, offset=0)
    assert len(two) == 2, two
    for a in [owner] + helpers:
        assert a["admin_id"] in paged, (a, paged)
    expect_error(lambda: A.update_admin(owner["admin_id"], status="Disabled"), 400, 40002, "status")
    low = A.update_admin(owner["admin_id"], status="Disabled", role="Read-only")
    assert (low["status"], low["role"]) == ("Disabled", "Read-only"), low
    back = A.update_admin(owner["admin_id"], status="Active", role="Administrator")
    assert (back["status"], back["role"]) == ("Active", "Administrator"), back
    for a in [owner] + helpers:
        assert A.delete_admin(a["admin_id"]) == ""
    assert A.delete_admin(owner["admin_id"]) == "", "deleting an absent administrator answers 200"


@check
def rate_limited_stretch_rides_through_backoff():
    rl = admin(port=RL_PORT)
    u = rl.add_user(uname("limited"))
    for _ in range(6):
        assert rl.get_user_by_id(u["user_id"])["username"] == uname("limited")
    calls = json.loads(urllib.request.urlopen("http://%s:%d/_emulator/calls" % (HOST, RL_PORT)).read())
    got = calls["by_endpoint"]["users.get"]
    assert int(got.get("429", 0)) >= 1, got
    assert int(got.get("200", 0)) == 6, got
    # With backoff disabled the client hands back Duo's 429 body.
    rl._MAX_BACKOFF_WAIT_SECS = 0
    for _ in range(10):
        try:
            rl.get_user_by_id(u["user_id"])
        except RuntimeError as e:
            assert e.status == 429 and error_body(e)["code"] == 42901, e
            break
    else:
        raise AssertionError("never rate limited")


failed = [n for n, err in results if err]
print("%s: %d checks, %d failed%s" % (TAG, len(results), len(failed), (": " + ", ".join(failed)) if failed else ""))
sys.exit(1 if failed else 0)
