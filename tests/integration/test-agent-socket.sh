#!/bin/sh
# test-agent-socket.sh - the agent's Unix socket under abuse, on a running
# agent with a SoftHSM2 token and a real directory:
#
#  - the socket directory is 0700, the socket 0600;
#  - a frame over the 4 MiB cap, an empty frame, truncated frames, garbage
#    JSON, JSON that is not an object, unknown ops and fields, a sign
#    request without a domain tag (and one with the registry's tag, which
#    only the agent itself signs): each refused, the daemon keeps serving;
#  - gossip_alert: two directory-signed heads of an account the agent does
#    not watch that prove a fork (or a rollback) give one alert however
#    often they are reported; forged heads, heads that do not conflict,
#    heads of another account and garbage are refused without an alert;
#  - forty clients stalled in the middle of a frame and one that never
#    reads its answers do not delay another client;
#  - a client of another uid is refused by SO_PEERCRED and counted in
#    `status` (the test sets a child's uid, which needs root: CI runs it
#    as root, and elsewhere the test fails saying so).
set -eu
prog=test-agent-socket
. "$top_srcdir/tests/integration/test-agent-lib.sh"

dir_start
account_add alice@example.org
DIR_ID=$(dir_id 2>/dev/null)
hsm_token card
init_device C alice@example.org card "$HSM_URI" --pin-file "$T/pin" \
    --check-interval 2 --long-poll 5
register_device C
agent_start C
SOCK=$T/C/run/devid/agent.sock

note "modes of the socket and its directory"
[ "$(stat -c %a "$T/C/run/devid")" = 700 ] || fail "socket dir mode"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode"
[ "$(stat -c %a "$T/C/data/devid")" = 700 ] || fail "state dir mode"

note "malformed frames and requests"
python3 - "$T" "$SOCK" <<'PYX' || fail "frame tests"
import json, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import raw
path = sys.argv[2]

def ok_status():
    r = raw.call(path, {"op": "status"})
    assert r and r["ok"] is True, r

def expect_error(body, code, closes=False, hdr=None):
    s = raw.conn(path)
    if hdr is not None:
        s.sendall(hdr)
    else:
        raw.send_raw(s, body)
    r = raw.recv(s)
    assert r is not None and r["ok"] is False, r
    assert r["error"]["code"] == code, r
    if closes:
        s.settimeout(5)
        assert s.recv(1) == b"", "connection not closed"
    else:
        # framing intact: the same connection still answers
        raw.send_raw(s, json.dumps({"op": "status"}).encode())
        r2 = raw.recv(s)
        assert r2 and r2["ok"] is True, r2
    s.close()
    ok_status()

# over the cap: only the header is sent, the agent must not wait for 4 MiB
expect_error(None, "too_large", True, struct.pack(">I", 4 * 1024 * 1024 + 1))
expect_error(None, "too_large", True, struct.pack(">I", 0xffffffff))
expect_error(None, "bad_request", True, struct.pack(">I", 0))
# exactly at the cap is a frame (it is garbage, so bad_request)
s = raw.conn(path)
raw.send_raw(s, b" " * (4 * 1024 * 1024))
r = raw.recv(s)
assert r and r["error"]["code"] == "bad_request", r
s.close()
expect_error(b"{not json", "bad_request")
expect_error(b"[1,2,3]", "bad_request")
expect_error(b'"text"', "bad_request")
expect_error(b'{"op":"status","op":"info"}', "bad_request")
expect_error(b'{"op":"status"} trailing', "bad_request")
expect_error(b'{"op":"nosuchop"}', "bad_request")
expect_error(b'{"op":42}', "bad_request")
expect_error(b'{"nop":"status"}', "bad_request")
expect_error(b'{"op":"approve","device":"abcd","extra":1}', "bad_request")
expect_error(b'{"op":"approve","device":"xyz!"}', "bad_request")
expect_error(b'{"op":"ack","alert":"zz"}', "bad_request")
expect_error(b'{"op":"unlock","pin":7}', "bad_request")
expect_error(b'{"op":"open","envelope":"x"}', "bad_request")
expect_error(b'{"op":"sign","transcript":"not base64!"}', "bad_request")
deep = b"[" * 5000 + b"]" * 5000
expect_error(deep, "bad_request")

# truncated frames: header only, half a header, half a body
for chunk in (struct.pack(">I", 100), b"\x00\x00", struct.pack(">I", 100) + b'{"op":'):
    s = raw.conn(path)
    s.sendall(chunk)
    s.close()
    ok_status()

# sign: only transcripts that begin with a devid domain tag
def sign(t):
    import base64
    b = base64.urlsafe_b64encode(t).decode().rstrip("=")
    return raw.call(path, {"op": "sign", "transcript": b})
r = sign(b"hello world, sign me")
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-login-v1")            # no NUL after the tag
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-head-v1\0" + b"x" * 40)     # the directory's tag
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-registry-v1\0{}")     # the agent's own business
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-contact-v2\0{}")     # not a tag
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-endorse-v1\0" + b"z" * 40)  # only through "endorse"
assert r["ok"] is False and r["error"]["code"] == "denied", r
r = sign(b"devid-login-v1\0" + b"y" * 40)
assert r["ok"] is True and len(r["sig"]) == 86, r
r = sign(b"devid-contact-v1\0{}")     # devid-msg's contact pins
assert r["ok"] is True and len(r["sig"]) == 86, r

# a request id is echoed
r = raw.call(path, {"op": "status", "id": 17})
assert r["id"] == 17, r
print("frames ok")
PYX

note "open: a sealed message is opened in the agent, once"
info=$(rawcall C '{"op":"info"}')
DEV_C=$(echo "$info" | python3 -c "import json,sys; print(json.load(sys.stdin)['device'])")
ENC_C=$(echo "$info" | python3 -c "import json,sys; print(json.load(sys.stdin)['enc_pub'])")
sess=$(rawcall C '{"op":"session"}')
python3 - "$sess" "$URL" "$T/head.json" <<'PYX' || fail "fetching the head"
import json, sys, urllib.request
tok = json.loads(sys.argv[1])["token"]
rq = urllib.request.Request(sys.argv[2] + "/v1/accounts/alice@example.org/log?since=0",
                            headers={"Authorization": "Bearer " + tok})
json.dump(json.load(urllib.request.urlopen(rq, timeout=10))["head"], open(sys.argv[3], "w"))
PYX
"$SEAL" bob@example.org "$DEV_C" "$ENC_C" "$T/head.json" "hello from bob" \
    > "$T/sealed" || fail "seal"
"$SEAL" bob@example.org "$DEV_C" "$ENC_C" "$T/head.json" "split view" \
    "$T/dir.db.key" > "$T/sealed-split" || fail "seal (split view)"
"$SEAL" bob@example.org "$DEV_C" "$ENC_C" "$T/head.json" "newer view" \
    "$T/dir.db.key" ahead > "$T/sealed-ahead" || fail "seal (newer view)"
ecdh0=$(js C status "d['token']['ecdhs']")
python3 - "$T" "$SOCK" <<'PYX' || fail "open"
import base64, json, sys
sys.path.insert(0, sys.argv[1])
import raw
path = sys.argv[2]
env, key = open(sys.argv[1] + "/sealed").read().split("\n")[:2]
env = json.loads(env)
r = raw.call(path, {"op": "open", "envelope": env, "sender_key": key})
assert r["ok"] is True, r
body = base64.urlsafe_b64decode(r["payload"]["body"] + "==")
assert body == b"hello from bob", body
assert r["sender"]["account"] == "bob@example.org", r
# the same message again: the replay store refuses it
r = raw.call(path, {"op": "open", "envelope": env, "sender_key": key})
assert r["ok"] is False and r["error"]["code"] == "rejected", r
assert r["error"]["message"] == "message rejected", r
# another sender key: refused before any token operation
other = open(sys.argv[1] + "/sealed-split").read().split("\n")[1]
r = raw.call(path, {"op": "open", "envelope": env, "sender_key": other})
assert r["ok"] is False and r["error"]["code"] == "rejected", r
# a changed ciphertext: the signature fails
env2 = dict(env)
ct = env2["ciphertext"]
env2["ciphertext"] = ("A" if ct[0] != "A" else "B") + ct[1:]
r = raw.call(path, {"op": "open", "envelope": env2, "sender_key": key})
assert r["ok"] is False and r["error"]["code"] == "rejected", r
# an unknown field in the envelope
env3 = dict(env)
env3["extra"] = 1
r = raw.call(path, {"op": "open", "envelope": env3, "sender_key": key})
assert r["ok"] is False, r
# a split view of the own account: rejected, and a fork alert
env, key = open(sys.argv[1] + "/sealed-split").read().split("\n")[:2]
r = raw.call(path, {"op": "open", "envelope": json.loads(env), "sender_key": key})
assert r["ok"] is False and r["error"]["code"] == "rejected", r
print("open ok")
PYX
ecdh1=$(js C status "d['token']['ecdhs']")
note "token ECDH operations for the opens: $ecdh0 -> $ecdh1"
[ "$ecdh1" -eq $((ecdh0 + 2)) ] || fail "expected 2 ECDH (the good message and the split view)"
[ "$(open_alerts C fork)" -eq 1 ] || fail "the split view raised no fork alert"
grep -q "message rejected at check" "$T/C.log" || fail "no detail in the log"

note "open: a sender saw a newer log that the directory hides from C"
python3 - "$T" "$SOCK" <<'PYX' || fail "newer view"
import json, sys, time
sys.path.insert(0, sys.argv[1])
import raw
path = sys.argv[2]
env, key = open(sys.argv[1] + "/sealed-ahead").read().split("\n")[:2]
req = {"op": "open", "envelope": json.loads(env), "sender_key": key}
r = raw.call(path, req)
assert r["ok"] is False and r["error"]["code"] == "unavailable", r
assert "try again" in r["error"]["message"], r
t0 = time.time()
while True:
    st = raw.call(path, {"op": "status"})
    if any("does not show this device" in a["message"] for a in st["alerts"]):
        break
    assert time.time() - t0 < 20, st
    time.sleep(0.2)
print("split-view alert after %.1f s" % (time.time() - t0))
r = raw.call(path, req)
assert r["ok"] is False and r["error"]["code"] == "rejected", r
PYX

note "gossip_alert: only two heads that verify and prove the conflict"
python3 - "$T" "$SOCK" "$T/dir.db.key" <<'PYX' || fail "gossip_alert"
import base64, hashlib, json, os, struct, sys, time
sys.path.insert(0, sys.argv[1])
import raw
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
path = sys.argv[2]
dirkey = serialization.load_pem_private_key(open(sys.argv[3], "rb").read(), None)
spki = dirkey.public_key().public_bytes(serialization.Encoding.DER,
    serialization.PublicFormat.SubjectPublicKeyInfo)
dir_id = hashlib.sha256(spki).hexdigest()
BOB = "bob@example.org"       # an account this agent does not watch

def b64(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")

def lp(b):
    return struct.pack(">I", len(b)) + b

# A head signed as the directory signs it (PROTOCOL.md section 3).
def head(acct, seq, hsh, t, key=dirkey):
    tr = (b"devid-head-v1\0" + lp(dir_id.encode()) + lp(acct.encode()) +
          struct.pack(">Q", seq) + lp(bytes.fromhex(hsh)) + struct.pack(">Q", t))
    r, s = decode_dss_signature(key.sign(tr, ec.ECDSA(hashes.SHA256())))
    return {"account": acct, "seq": seq, "hash": hsh, "time": t,
            "sig": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}

def h32():
    return os.urandom(32).hex()

def report(kind, v, c, account=BOB, **extra):
    req = {"op": "gossip_alert", "account": account, "kind": kind,
           "verified_head": v, "conflicting_head": c}
    req.update(extra)
    return raw.call(path, req)

def n_alerts():
    return len(raw.call(path, {"op": "status"})["alerts"])

def refused(code, kind, v, c, account=BOB, **extra):
    n0 = n_alerts()
    r = report(kind, v, c, account, **extra)
    assert r["ok"] is False and r["error"]["code"] == code, (kind, r)
    assert r["error"]["message"], r
    assert n_alerts() == n0, "an alert was raised for a refused report"
    return r["error"]["message"]

now = int(time.time())
ha, hb = h32(), h32()
v = head(BOB, 2, ha, now - 100)
c = head(BOB, 2, hb, now - 50)

# a real split view of a contact's log: kept once, whichever way round
r = report("split_view", v, c, reporter="ab" * 32)
assert r["ok"] is True and r["new"] is True and len(r["alert"]) == 16, r
fork_id = r["alert"]
for kind, a, b in (("split_view", v, c), ("fork", c, v),
                   ("fork", v, head(BOB, 2, hb, now - 10))):
    r = report(kind, a, b)
    assert r["ok"] is True and r["alert"] == fork_id and r["new"] is False, r
st = raw.call(path, {"op": "status"})
f = [a for a in st["alerts"] if a["id"] == fork_id][0]
assert f["kind"] == "fork" and f["account"] == BOB, f
assert f["details"]["verified_head"] == v, f
assert f["details"]["conflicting_head"] == c, f
assert f["details"]["reporter"] == "ab" * 32, f
assert f["details"]["report"] == "split_view", f

# a rollback: a smaller seq signed after the larger one
r = report("rollback", head(BOB, 5, h32(), now - 100), head(BOB, 3, h32(), now - 5))
assert r["ok"] is True and r["new"] is True, r
st = raw.call(path, {"op": "status"})
rb = [a for a in st["alerts"] if a["id"] == r["alert"]][0]
assert rb["kind"] == "rollback" and rb["account"] == BOB, rb

# forged heads: another key, a changed hash, a changed time, a head
# signed for another account
other = ec.generate_private_key(ec.SECP256R1())
refused("rejected", "fork", v, head(BOB, 2, hb, now, key=other))
refused("rejected", "fork", head(BOB, 2, ha, now, key=other), c)
bad = dict(c); bad["hash"] = h32()
refused("rejected", "fork", v, bad)
bad = dict(c); bad["time"] = now
refused("rejected", "split_view", v, bad)
bad = head("carol@example.org", 2, hb, now); bad["account"] = BOB
refused("rejected", "fork", v, bad)

# heads that do not conflict, or not in the way the kind says
refused("rejected", "fork", v, head(BOB, 2, ha, now))           # same log
refused("rejected", "split_view", v, head(BOB, 3, hb, now))     # other seq
refused("rejected", "fork", head(BOB, 3, ha, now - 9), head(BOB, 1, hb, now))
refused("rejected", "rollback", v, head(BOB, 3, hb, now))       # newer seq
refused("rejected", "rollback", v, head(BOB, 2, hb, now))       # same seq
m = refused("rejected", "rollback", head(BOB, 5, ha, now), head(BOB, 3, hb, now - 60))
assert "replayed" in m, m                                       # an old head

# the wrong account
refused("bad_request", "fork", v, c, account="carol@example.org")
refused("bad_request", "fork", v, head("carol@example.org", 2, hb, now))
refused("bad_request", "fork", v, c, account="Bob!")

# garbage
refused("bad_request", "other", v, c)
refused("bad_request", "fork", "x", c)
refused("bad_request", "fork", v, None)
refused("bad_request", "fork", v, c, extra=1)
refused("bad_request", "fork", v, c, reporter="xyz")
refused("bad_request", "fork", v, c, reporter=42)
refused("bad_request", "fork", v, c, reporter="AB" * 32)
refused("bad_request", "fork", v, dict(c, extra=1))
refused("bad_request", "fork", v, {k: c[k] for k in c if k != "sig"})
refused("bad_request", "fork", v, dict(c, sig=c["sig"][:-4]))
refused("bad_request", "fork", v, dict(c, seq=-2))
refused("bad_request", "fork", v, dict(c, seq="2"))
refused("bad_request", "fork", v, dict(c, hash=hb.upper()))
refused("bad_request", "fork", v, dict(c, account="x" * 200))
n0 = n_alerts()
for body in (b'{"op":"gossip_alert"}', b'{"op":"gossip_alert","account":7}',
             b'{"op":"gossip_alert","kind":"fork","kind":"fork"}'):
    s = raw.conn(path)
    raw.send_raw(s, body)
    r = raw.recv(s)
    assert r["ok"] is False and r["error"]["code"] == "bad_request", r
    raw.send_raw(s, json.dumps({"op": "status"}).encode())
    assert raw.recv(s)["ok"] is True
    s.close()
assert n_alerts() == n0
print("gossip_alert ok")
PYX
# "ALERT <id> [fork]: ..." or, with a severity, "[fork, critical]".
grep -qE "ALERT [0-9a-f]+ \[fork(, [a-z]+)?\]: split view of bob@example.org" "$T/C.log" ||
	fail "no alert line for the reported split view"
grep -q "gossip_alert refused: " "$T/C.log" || fail "refused reports not logged"
grep -c '"account":"bob@example.org"' "$T/C/data/devid/alerts.jsonl" |
    grep -qx 2 || fail "the journal does not hold exactly the two reported alerts"

note "stalled clients do not block the others"
python3 - "$T" "$SOCK" <<'PYX' || fail "concurrency"
import json, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import raw
path = sys.argv[2]
stalled = []
for i in range(40):
    s = raw.conn(path)
    s.sendall(struct.pack(">I", 1000) + b'{"op":"st')   # half a frame
    stalled.append(s)
# one client floods requests and never reads the answers
flood = raw.conn(path)
flood.setblocking(False)
req = struct.pack(">I", 15) + b'{"op":"status"}'
sent = 0
t_end = time.time() + 3
while time.time() < t_end:
    try:
        sent += flood.send(req * 64)
    except BlockingIOError:
        break
t0 = time.time()
r = raw.call(path, {"op": "status"})
dt = time.time() - t0
assert r["ok"] is True, r
print("answer with 40 stalled clients and a flooding one: %.3f s (flooder sent %d bytes)" % (dt, sent))
assert dt < 5, dt
for s in stalled:
    s.close()
flood.close()
PYX
agent_alive C

note "a client of another uid"
[ "$(id -u)" -eq 0 ] ||
	fail "the other-uid check must run as root: it changes a child's uid to 65534 (CI runs the tests as root)"
refused0=$(js C status "d['refused_peers']")
# Open the way through the file modes so that only SO_PEERCRED
# stands between the other uid and the agent.
chmod 755 "$T" "$T/C" "$T/C/run" "$T/C/run/devid"
chmod 666 "$SOCK"
python3 - "$T" "$SOCK" <<'PYX' || fail "another uid was not refused"
import os, sys
sys.path.insert(0, sys.argv[1])
import raw
pid = os.fork()
if pid == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        s = raw.conn(sys.argv[2])
        raw.send_raw(s, b'{"op":"status"}')
        r = raw.recv(s)
        ok = r is None or (r.get("ok") is False and r["error"]["code"] == "denied")
        os._exit(0 if ok else 3)
    except (ConnectionResetError, BrokenPipeError):
        os._exit(0)
    except Exception as e:
        print("child:", repr(e))
        os._exit(4)
_, st = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(st))
PYX
chmod 700 "$T/C/run/devid" "$T/C/run"
chmod 600 "$SOCK"
refused1=$(js C status "d['refused_peers']")
[ "$refused1" -eq $((refused0 + 1)) ] ||
	fail "refusal not counted: refused_peers $refused0 -> $refused1"
grep -q "refused a client: peer uid 65534" "$T/C.log" || fail "refusal not logged"

note "the daemon still serves and checks"
[ "$(js C status "d['ok']")" = True ] || fail "status after abuse"
c0=$(js C status "d['watcher']['checks']")
i=0
until [ "$(js C status "d['watcher']['checks']")" -gt "$c0" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || fail "the watcher stopped"; sleep 0.1
done

note "a second agent on the same socket is refused"
if ag C run --foreground >"$T/second.out" 2>&1; then
	fail "a second agent started"
fi
grep -q "already runs" "$T/second.out" || fail "second agent: $(cat "$T/second.out")"
agent_alive C
agent_stop C
note "PASS"
