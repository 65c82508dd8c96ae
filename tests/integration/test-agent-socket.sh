#!/bin/sh
# test-agent-socket.sh - the agent's Unix socket under abuse, on a running
# agent with a SoftHSM2 token and a real directory:
#
#  - the socket directory is 0700, the socket 0600;
#  - a frame over the 4 MiB cap, an empty frame, truncated frames, garbage
#    JSON, JSON that is not an object, unknown ops and fields, a sign
#    request without a domain tag (and one with the registry's tag, which
#    only the agent itself signs): each refused, the daemon keeps serving;
#  - forty clients stalled in the middle of a frame and one that never
#    reads its answers do not delay another client;
#  - a client of another uid is refused by SO_PEERCRED (when the test runs
#    as root it sets a child's uid; otherwise that part cannot run and is
#    reported).
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
if [ "$(id -u)" -eq 0 ]; then
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
	[ "$(js C status "d['refused_peers']")" -ge 1 ] || fail "refusal not counted"
	grep -q "refused a client: peer uid 65534" "$T/C.log" || fail "refusal not logged"
else
	note "not root: the other-uid client cannot be run here (file modes already keep other users out)"
fi

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
