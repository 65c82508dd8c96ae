#!/bin/sh
# test-tlog.sh - the global transparency log end to end (docs/protocol.md
# section 7): a devid-directory whose checkpoints two devid-witness
# processes cosign, agents on swtpm and SoftHSM2 that accept an
# account's log only when a quorum of those witnesses vouches for it,
# and devid-msg on top, all on loopback.  In the order they run:
#
#  1. Normal operation: the served checkpoint carries the directory's
#     signature and both cosignatures, each verified here independently
#     of devid's code (ECDSA and Ed25519 with openssl, key ids, the
#     cosignature's signed message); the leaves give the checkpoint's
#     root and are exactly the database's events; every inclusion and
#     consistency proof served verifies (RFC 9162); no agent raises a
#     tlog_* alert; a message from bob reaches alice.
#  2. A witness down: with W2 stopped, an agent with quorum 1 of 2
#     raises nothing and sends; one with quorum 2 of 2 raises
#     tlog_no_quorum naming w2 as missing, cleared once W2 is back.
#  3. Staleness: the directory restarted with --checkpoint-interval 0
#     serves its last checkpoint forever; an agent with max_stale 5 s
#     raises tlog_stale (and had none before, while the directory
#     refreshed its checkpoint every 2 s), cleared once it publishes.
#  4. A forked directory: a second devid-directory on a copy of the
#     database with the same key.  The real one grows with bob's phone,
#     the fork with a phantom device registered on alice's account with
#     her password.  Both witnesses refuse the fork's checkpoint and
#     keep both signed notes as evidence; the phantom's agent, shown the
#     fork, raises tlog_no_quorum; devid-msg refuses to send to alice
#     through it.  A third witness that never saw the real log cosigns
#     the fork; alice's laptop, which had accepted the real checkpoint,
#     is pointed at the fork with quorum 1 of {W1,W2,W3} and raises
#     tlog_fork with both signed checkpoints.
#  5. A device withheld from the public log: written straight into the
#     real directory's database on bob's account, it is in bob's log but
#     in no checkpoint; bob's laptop (max_stale 5 s) raises
#     tlog_inclusion for that event.
#
# Everything runs in the temporary directory of test-agent-lib.sh, whose
# cleanup stops every process with a pid file there (agents, both
# directories, the witnesses) and swtpm on every exit path.
set -eu
prog=test-tlog
# The scenarios below run one SQLite directory and forks of its file.
# shellcheck disable=SC2034
DEVID_TEST_DIR_BACKEND=sqlite
. "$top_srcdir/tests/integration/test-msg-lib.sh"

# A failure also shows the end of the directories' and witnesses' logs:
# what they refused, and why, is there.
fail() {
	echo "$prog: FAIL: $*" >&2
	for _f in "$T"/dir.log "$T"/fork.log "$T"/w[123].log; do
		[ -f "$_f" ] || continue
		echo "--- ${_f##*/} (end)" >&2
		tail -n 12 "$_f" >&2
	done
	exit 1
}

WITNESS=$top_builddir/witness/devid-witness
[ -x "$WITNESS" ] || fail "$WITNESS is not built"
for tool in curl sqlite3 "${OPENSSL_BIN:-openssl}"; do
	command -v "$tool" >/dev/null 2>&1 ||
		fail "$tool not found: run swtpm-ci/install-deps"
done
OPENSSL_BIN=${OPENSSL_BIN:-openssl}
export OPENSSL_BIN

# Short intervals throughout: the whole test stays well under 90 s.
AGENT_FLAGS="--check-interval 1 --long-poll 2 --max-stale 600 --http-timeout 3"
REFRESH=2

# tl.py: fetches and checks checkpoints like a careful client would,
# independently of devid's own code.
#   tl.py get URL            the signed note /v1/tlog/checkpoint serves
#   tl.py check NOTE LOGKEY VKEY...
#                            "size N", "root R", "dir ok|bad|missing",
#                            then per witness vkey "NAME ok TIME",
#                            "NAME missing" or "NAME bad"
#   tl.py tree URL SIZE ROOT EVENTS
#                            the leaves up to SIZE give ROOT, are the
#                            events in the file EVENTS (account|seq|hash
#                            lines), and every proof served verifies
cat >"$T/tl.py" <<'PYEOF'
import base64, hashlib, json, os, struct, subprocess, sys, tempfile
import urllib.error, urllib.request

OPENSSL = os.environ.get("OPENSSL_BIN") or "openssl"
TMP = os.path.dirname(os.path.abspath(__file__))

def get(url):
    with urllib.request.urlopen(url + "/v1/tlog/checkpoint", timeout=5) as r:
        assert r.status == 200, r.status
        d = json.loads(r.read())
    assert set(d) == {"checkpoint"}, d
    return d["checkpoint"]

def split(note):
    text, sep, sigs = note.partition("\n\n")
    assert sep, "no empty line in the note"
    text += "\n"
    lines = [l for l in sigs.split("\n") if l]
    out = []
    for l in lines:
        assert l.startswith("\u2014 "), l
        name, b64 = l[2:].rsplit(" ", 1)
        out.append((name, base64.b64decode(b64, validate=True)))
    return text, out

def pem(der, path):
    open(path, "w").write("-----BEGIN PUBLIC KEY-----\n" +
                          base64.encodebytes(der).decode() +
                          "-----END PUBLIC KEY-----\n")
    return path

def ecdsa_ok(spki, data, sig):
    with tempfile.TemporaryDirectory(dir=TMP) as d:
        m, s = os.path.join(d, "m"), os.path.join(d, "s")
        open(m, "wb").write(data)
        open(s, "wb").write(sig)
        r = subprocess.run([OPENSSL, "dgst", "-sha256", "-verify",
                            pem(spki, os.path.join(d, "k")), "-signature", s, m],
                           capture_output=True)
        return r.returncode == 0

def ed25519_ok(pub, data, sig):
    spki = bytes.fromhex("302a300506032b6570032100") + pub
    with tempfile.TemporaryDirectory(dir=TMP) as d:
        m, s = os.path.join(d, "m"), os.path.join(d, "s")
        open(m, "wb").write(data)
        open(s, "wb").write(sig)
        r = subprocess.run([OPENSSL, "pkeyutl", "-verify", "-pubin", "-inkey",
                            pem(spki, os.path.join(d, "k")), "-rawin", "-in", m,
                            "-sigfile", s], capture_output=True)
        return r.returncode == 0

def vkey(v):
    name, kid, key = v.split("+", 2)
    return name, bytes.fromhex(kid), base64.b64decode(key, validate=True)

def check(note, logkey, wits):
    text, sigs = split(note)
    origin, size, root = text.split("\n")[:3]
    print("size", size)
    print("root", root)
    lname, lkid, lkey = vkey(logkey)
    assert lkey[0] == 2, "the log key is not of type 0x02"
    assert hashlib.sha256(lkey[1:]).digest()[:4] == lkid, "log key id"
    dirsig = "missing"
    for name, blob in sigs:
        if name == lname and blob[:4] == lkid:
            dirsig = "ok" if ecdsa_ok(lkey[1:], text.encode(), blob[4:]) else "bad"
    print("dir", dirsig)
    for w in wits:
        name, kid, key = vkey(w)
        assert key[0] == 4 and len(key) == 33, w
        want = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
        assert want == kid, "the key id of %s is not H(name, 0x04, key)" % name
        state = "missing"
        for n, blob in sigs:
            if n != name or blob[:4] != kid:
                continue
            assert len(blob) == 4 + 8 + 64, "cosignature length"
            ts = struct.unpack(">Q", blob[4:12])[0]
            msg = b"cosignature/v1\ntime %d\n" % ts + text.encode()
            state = "ok %d" % ts if ed25519_ok(key[1:], msg, blob[12:]) else "bad"
        print(name, state)

def H(b):
    return hashlib.sha256(b).digest()

def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())

def status(url):
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError as e:
        return e.code
    return 200

def b64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def mth(hashes):
    # RFC 9162 section 2.1.1, on leaf hashes.
    if len(hashes) == 0:
        return H(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return H(b"\x01" + mth(hashes[:k]) + mth(hashes[k:]))

def inclusion_ok(index, size, leaf, proof, root):
    # RFC 9162 section 2.1.3.2.
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = H(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = H(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root

def consistency_ok(m, n, proof, old, new):
    # RFC 9162 section 2.1.4.2, for 0 < m < n.
    if m & (m - 1) == 0:
        proof = [old] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    if not proof:
        return False
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = H(b"\x01" + c + fr)
            sr = H(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = H(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old and sr == new

def tree(url, size, root_b64, events_file):
    # The leaves of section 7.1 give the checkpoint's root; every
    # inclusion and consistency proof the directory serves verifies; the
    # leaves are exactly the events of its database, each account's in
    # order of seq; nothing past the checkpoint is served.
    size, root = int(size), base64.b64decode(root_b64)
    leaves = fetch("%s/v1/tlog/leaves?start=0&end=%d" % (url, size))["leaves"]
    assert len(leaves) == size, leaves
    hashes = []
    for l in leaves:
        a, ev = l["account"].encode(), bytes.fromhex(l["hash"])
        assert len(ev) == 32, l
        leaf = (b"devid-tlog-leaf-v1\0" + struct.pack(">I", len(a)) + a +
                struct.pack(">Q", l["seq"]) + struct.pack(">I", 32) + ev)
        hashes.append(H(b"\x00" + leaf))
    assert mth(hashes) == root, "the leaves do not give the checkpoint's root"
    events = [tuple(x.split("|")) for x in open(events_file).read().split()]
    got = [(l["account"], str(l["seq"]), l["hash"]) for l in leaves]
    assert sorted(got) == sorted(events), (got, events)
    for a in set(x[0] for x in got):
        seqs = [int(x[1]) for x in got if x[0] == a]
        assert seqs == list(range(1, len(seqs) + 1)), (a, seqs)
    for i in range(size):
        d = fetch("%s/v1/tlog/proof/inclusion?index=%d&size=%d" % (url, i, size))
        assert d["index"] == i and d["size"] == size, d
        assert inclusion_ok(i, size, hashes[i], [b64u(x) for x in d["proof"]], root), (i, d)
    for m in range(1, size):
        d = fetch("%s/v1/tlog/proof/consistency?old=%d&size=%d" % (url, m, size))
        assert d["old"] == m and d["size"] == size, d
        assert consistency_ok(m, size, [b64u(x) for x in d["proof"]],
                              mth(hashes[:m]), root), (m, d)
    for path in ("proof/inclusion?index=0&size=%d", "proof/consistency?old=1&size=%d"):
        code = status(url + "/v1/tlog/" + path % (size + 1))
        assert code == 404, "a proof into an unpublished tree: HTTP %d" % code
    print("tree of %d leaves verified" % size)

if sys.argv[1] == "get":
    sys.stdout.write(get(sys.argv[2]))
elif sys.argv[1] == "check":
    check(open(sys.argv[2]).read(), sys.argv[3], sys.argv[4:])
elif sys.argv[1] == "tree":
    tree(*sys.argv[2:6])
else:
    sys.exit("tl.py get|check")
PYEOF

# --- witnesses ---

# wit_init N NAME: witness N's key; sets VK<N>.
wit_init() {
	"$WITNESS" init --key "$T/w$1.key" --name "$2" >"$T/w$1.vkey" 2>"$T/w$1.init" ||
		fail "devid-witness init $2: $(cat "$T/w$1.init")"
	eval "VK$1=\$(cat \"\$T/w\$1.vkey\")"
	eval "WNAME$1=\$2"
}

# wit_start N [PORT]: witness N on 127.0.0.1:PORT (0 or none: a free
# port), state in $T/w<N>.state, witnessing $LOGKEY; sets W<N>_URL.
wit_start() {
	rm -f "$T/w$1.addr"
	_wn=""
	eval "_wn=\$WNAME$1"
	"$WITNESS" run --key "$T/w$1.key" --name "$_wn" --state "$T/w$1.state" \
	    --listen "127.0.0.1:${2:-0}" --ready-file "$T/w$1.addr" \
	    --log "$LOGKEY" >>"$T/w$1.log" 2>&1 &
	echo $! >"$T/witness$1.pid"
	i=0
	while [ ! -s "$T/w$1.addr" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "witness $1 did not start: $(tail -n 5 "$T/w$1.log")"
		proc_alive "$(cat "$T/witness$1.pid")" ||
			fail "witness $1 exited: $(tail -n 5 "$T/w$1.log")"
		sleep 0.1
	done
	eval "W$1_URL=http://\$(cat \"\$T/w\$1.addr\")"
}

# wit_stop N
wit_stop() {
	proc_stop "$(cat "$T/witness$1.pid")"
	rm -f "$T/witness$1.pid"
}

# wit_arg N: the directory's --witness value for witness N.
wit_arg() {
	eval "echo \"\$W$1_URL,\$VK$1\""
}

# --- directories ---

# tdir_start NAME DB PORT ARGS...: devid-directory on DB (its key beside
# it) on 127.0.0.1:PORT (0: free) with ARGS; $T/NAME.pid, $T/NAME.log;
# sets TD_URL.
tdir_start() {
	_tn=$1 _tdb=$2 _tport=$3
	shift 3
	rm -f "$T/$_tn.addr"
	"$DIRECTORY" serve --db "$_tdb" --listen "127.0.0.1:$_tport" \
	    --ready-file "$T/$_tn.addr" --scrypt-cost 10 --rate 0 \
	    --checkpoint-refresh "$REFRESH" "$@" >>"$T/$_tn.log" 2>&1 &
	echo $! >"$T/$_tn.pid"
	i=0
	while [ ! -s "$T/$_tn.addr" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "directory $_tn did not start: $(tail -n 5 "$T/$_tn.log")"
		proc_alive "$(cat "$T/$_tn.pid")" ||
			fail "directory $_tn exited: $(tail -n 5 "$T/$_tn.log")"
		sleep 0.1
	done
	TD_URL=http://$(cat "$T/$_tn.addr")
}

# tdir_stop NAME
tdir_stop() {
	proc_stop "$(cat "$T/$1.pid")"
	rm -f "$T/$1.pid"
}

# cp_get URL OUT: the checkpoint URL serves, into OUT.
cp_get() {
	python3 "$T/tl.py" get "$1" >"$2" || fail "GET $1/v1/tlog/checkpoint"
}

# cp_check NOTE VKEY...: tl.py check of a saved note, into $T/cp.check.
cp_check() {
	_cn=$1
	shift
	python3 "$T/tl.py" check "$_cn" "$LOGKEY" "$@" >"$T/cp.check" ||
		fail "the checkpoint does not parse: $(cat "$_cn")"
}

# cp_field NAME: a field of the last cp_check ("size", "root", "dir" or
# a witness name: ok/missing/bad).
cp_field() {
	sed -n "s/^$1 \([^ ]*\).*/\1/p" "$T/cp.check"
}

# wait_cp URL SIZE MAX_S STATE1 STATE2 STATE3: until the checkpoint URL
# serves has tree size SIZE (or any with "-"), a valid directory
# signature and, for W1, W2, W3, the states given (ok, missing; "-":
# any).  The note is left in $T/cp.note.
wait_cp() {
	t0=$(now_ms)
	while :; do
		cp_get "$1" "$T/cp.note"
		cp_check "$T/cp.note" "$VK1" "$VK2" "$VK3"
		_ok=1
		[ "$2" = - ] || [ "$(cp_field size)" = "$2" ] || _ok=0
		[ "$(cp_field dir)" = ok ] || _ok=0
		[ "$4" = - ] || [ "$(cp_field "$WNAME1")" = "$4" ] || _ok=0
		[ "$5" = - ] || [ "$(cp_field "$WNAME2")" = "$5" ] || _ok=0
		[ "$6" = - ] || [ "$(cp_field "$WNAME3")" = "$6" ] || _ok=0
		[ $_ok = 0 ] || break
		[ $(($(now_ms) - t0)) -lt $(($3 * 1000)) ] ||
			fail "$1 serves no checkpoint of size $2 with $WNAME1 $4, $WNAME2 $5, $WNAME3 $6 within $3 s: $(cat "$T/cp.check") $(cat "$T/cp.note")"
		sleep 0.2
	done
}

# tree_check URL DB: tl.py tree on the checkpoint of the last cp_check,
# against the events in DB.
tree_check() {
	sqlite3 -cmd ".timeout 5000" "$2" \
	    "SELECT account, seq, lower(hex(hash)) FROM events;" >"$T/events" ||
		fail "cannot read the events of $2"
	python3 "$T/tl.py" tree "$1" "$(cp_field size)" "$(cp_field root)" \
	    "$T/events" >"$T/tree.out" 2>&1 ||
		fail "the tree $1 serves does not verify: $(cat "$T/tree.out")"
}

# --- agents ---

# tlog_alerts NAME: the kinds of NAME's open tlog_* alerts, sorted.
tlog_alerts() {
	js "$1" status "' '.join(sorted(a['kind'] for a in d['alerts'] if a['kind'].startswith('tlog_')))"
}

# no_tlog_alert NAME: NAME has no open tlog_* alert.
no_tlog_alert() {
	_k=$(tlog_alerts "$1")
	[ -z "$_k" ] || fail "$1 has tlog alerts ($_k): $(ag "$1" alerts --json)"
}

# wait_js NAME MAX_S PYEXPR: until PYEXPR (on `status --json` as d) is
# true for NAME.
wait_js() {
	t0=$(now_ms)
	until [ "$(js "$1" status "bool($3)")" = True ]; do
		[ $(($(now_ms) - t0)) -lt $(($2 * 1000)) ] ||
			fail "$1: not ($3) within $2 s: $(ag "$1" status --json)"
		sleep 0.2
	done
}

# alert_json NAME KIND OUT: the first open alert of KIND as JSON in OUT.
alert_json() {
	ag "$1" alerts --json | python3 -c "
import json, sys
a = [x for x in json.load(sys.stdin)['alerts'] if x['kind'] == sys.argv[1]]
assert a, 'no ' + sys.argv[1]
json.dump(a[0], sys.stdout)" "$2" >"$3" || fail "$1 has no $2 alert"
}

# ----------------------------------------------------------------------
note "set-up: directory key, three witness keys, two witnesses running"
LOGKEY=$("$DIRECTORY" key --db "$T/dir.db" 2>/dev/null |
    sed -n 's/^log key: *//p')
[ -n "$LOGKEY" ] || fail "devid-directory key prints no log key"
DIR_ID=$(dir_id 2>/dev/null)
case $LOGKEY in
"devid/$DIR_ID+"*) ;;
*) fail "the log key does not name the default origin devid/$DIR_ID: $LOGKEY" ;;
esac
wit_init 1 w1.example.org
wit_init 2 w2.example.org
wit_init 3 w3.example.org
wit_start 1
wit_start 2
WQ2="--witness $VK1 --witness $VK2 --witness-quorum 2"

tdir_start dir "$T/dir.db" 0 --witness "$(wit_arg 1)" --witness "$(wit_arg 2)"
URL=$TD_URL
DIR_PORT=${URL##*:}
account_add "$ALICE"
account_add "$BOB"
tpm_start
hsm_token bobphone
URI_Q=$HSM_URI
hsm_token boblaptop
URI_B=$HSM_URI
hsm_token phantom
URI_P=$HSM_URI

# ----------------------------------------------------------------------
note "1. normal operation: two witnesses, agents with quorum 2 of 2"
# shellcheck disable=SC2086
init_device A "$ALICE" laptop tpm2 --tcti "$TCTI" $AGENT_FLAGS $WQ2
# shellcheck disable=SC2086
init_device B "$BOB" laptop "$URI_B" --pin-file "$T/pin" $AGENT_FLAGS $WQ2
grep -q "^witness = $VK1\$" "$T/A/cfg/devid/agent.conf" &&
    grep -q "^witness_quorum = 2\$" "$T/A/cfg/devid/agent.conf" ||
	fail "init did not write the witnesses: $(cat "$T/A/cfg/devid/agent.conf")"
register_device A
register_device B
agent_start A
agent_start B

wait_cp "$URL" 2 20 ok ok missing
[ "$(grep -c '^— ' "$T/cp.note")" -eq 3 ] ||
	fail "expected the directory's signature and two cosignatures: $(cat "$T/cp.note")"
grep -q "^— $WNAME1 " "$T/cp.note" && grep -q "^— $WNAME2 " "$T/cp.note" ||
	fail "no cosignature lines of both witnesses: $(cat "$T/cp.note")"
ROOT2=$(cp_field root)
tree_check "$URL" "$T/dir.db"
note "checkpoint 2 $ROOT2: signed by the directory, cosigned by $WNAME1 and $WNAME2"
for w in 1 2; do
	"$WITNESS" status --state "$T/w$w.state" >"$T/w$w.status" ||
		fail "devid-witness status $w"
	grep -q "^devid/$DIR_ID 2 $ROOT2 " "$T/w$w.status" ||
		fail "witness $w does not hold checkpoint 2: $(cat "$T/w$w.status")"
done
# The tree: two leaves, alice's add and bob's add.
curl -fsS "$URL/v1/tlog/leaves?start=0&end=2" | python3 -c "
import json, sys
l = json.load(sys.stdin)['leaves']
assert sorted((x['account'], x['seq']) for x in l) == sorted([('$ALICE', 1), ('$BOB', 1)]), l
" || fail "the leaves are not alice's and bob's first events"
for n in A B; do
	wait_js "$n" 20 "d['tlog']['checkpoint_size'] >= 2 and d['tlog']['proven_seq'] == d['tlog']['head_seq'] == 1"
	no_tlog_alert "$n"
done
msg_ok B send "$ALICE" -m "hello alice, through a witnessed log"
msg_ok A recv
out_has "hello alice, through a witnessed log"
no_tlog_alert A
no_tlog_alert B

# ----------------------------------------------------------------------
note "2. a witness down: quorum 1 of 2 goes on, quorum 2 of 2 alerts"
agent_stop B
# B also runs with max_stale 5 s from here: while the directory refreshes
# its checkpoint every $REFRESH s, that is fresh enough (scenario 3).
agent_start B --witness-quorum 1 --max-stale 5
B_SINCE=$(now_ms)
W2_PORT=${W2_URL##*:}
wit_stop 2
wait_cp "$URL" 2 15 ok missing missing
note "the directory now serves checkpoints cosigned by $WNAME1 only"
wait_alert A tlog_no_quorum 15 >/dev/null
alert_json A tlog_no_quorum "$T/a.json"
python3 - "$T/a.json" "$WNAME1" "$WNAME2" <<'PYX' || fail "the no-quorum alert does not name the missing witness: $(cat "$T/a.json")"
import json, sys
a = json.load(open(sys.argv[1]))
w1, w2 = sys.argv[2], sys.argv[3]
m = a['message']
assert 'missing: ' + w2 in m and 'valid: ' + w1 in m, m
assert '1 of 2 needed' in m, m
assert a['details']['quorum'] == 2, a
assert a['details']['checkpoint'].count('\n\u2014 ') == 2, a
PYX
note "A: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['message'])" "$T/a.json")"
msg_ok B send "$ALICE" -m "sent with one witness of two"
out_has "Sent to $ALICE"
no_tlog_alert B
[ "$(js B status "d['tlog']['quorum']")" -eq 1 ] || fail "B does not run with quorum 1"
wit_start 2 "$W2_PORT"
wait_cp "$URL" 2 15 ok ok missing
wait_no_alert A tlog_no_quorum 15 >/dev/null
note "$WNAME2 is back: A's alert cleared"

# ----------------------------------------------------------------------
note "3. staleness: a directory that publishes no new checkpoint"
# At least max_stale + 1 s of B with max_stale 5 s, without tlog_stale,
# while the directory refreshed its checkpoint.
while [ $(($(now_ms) - B_SINCE)) -lt 6000 ]; do sleep 0.2; done
no_tlog_alert B
tdir_stop dir
tdir_start dir "$T/dir.db" "$DIR_PORT" --witness "$(wit_arg 1)" \
    --witness "$(wit_arg 2)" --checkpoint-interval 0
T_STOP=$(now_ms)
ms=$(wait_alert B tlog_stale 20)
note "B raised tlog_stale after $ms ms with the checkpoint frozen"
alert_json B tlog_stale "$T/a.json"
python3 - "$T/a.json" <<'PYX' || fail "the staleness alert is wrong: $(cat "$T/a.json")"
import json, sys, time
a = json.load(open(sys.argv[1]))
d = a['details']
assert d['max_stale'] == 5, d
assert 0 < d['fresh'] < time.time() - 5, d
PYX
[ "$(open_alerts A tlog_stale)" -eq 0 ] || fail "A (max_stale 600) raised tlog_stale"
tdir_stop dir
tdir_start dir "$T/dir.db" "$DIR_PORT" --witness "$(wit_arg 1)" \
    --witness "$(wit_arg 2)"
wait_no_alert B tlog_stale 15 >/dev/null
note "the directory publishes again: B's alert cleared"

# ----------------------------------------------------------------------
note "4. a forked directory: a copy of its database and key grows another history"
wait_cp "$URL" 2 15 ok ok missing
tdir_stop dir
sqlite3 "$T/dir.db" ".backup '$T/fork.db'" || fail "cannot copy the database"
cp "$T/dir.db.key" "$T/fork.db.key"
chmod 600 "$T/fork.db.key"
tdir_start dir "$T/dir.db" "$DIR_PORT" --witness "$(wit_arg 1)" \
    --witness "$(wit_arg 2)"
tdir_start fork "$T/fork.db" 0 --witness "$(wit_arg 1)" \
    --witness "$(wit_arg 2)"
FORK_URL=$TD_URL

note "the real directory: bob registers his phone"
# shellcheck disable=SC2086
init_device Q "$BOB" phone "$URI_Q" --pin-file "$T/pin" $AGENT_FLAGS $WQ2
register_device Q
wait_cp "$URL" 3 15 ok ok missing
ROOT3=$(cp_field root)
tree_check "$URL" "$T/dir.db"
wait_js A 20 "d['tlog']['checkpoint_size'] == 3"
no_tlog_alert A

note "the fork: a phantom device registered on alice's account with her password"
init_device P "$ALICE" phantom "$URI_P" --pin-file "$T/pin" \
    --directory "$FORK_URL" $AGENT_FLAGS $WQ2
register_device P
wait_cp "$FORK_URL" 3 15 missing missing missing
FROOT3=$(cp_field root)
tree_check "$FORK_URL" "$T/fork.db"
[ "$FROOT3" != "$ROOT3" ] || fail "the fork has the real root"
note "real checkpoint 3 $ROOT3, forked checkpoint 3 $FROOT3 (no cosignature)"
for w in 1 2; do
	t0=$(now_ms)
	until "$WITNESS" evidence --state "$T/w$w.state" >"$T/w$w.evidence" 2>&1 &&
	    grep -q "^$FROOT3\$" "$T/w$w.evidence"; do
		[ $(($(now_ms) - t0)) -lt 15000 ] ||
			fail "witness $w keeps no evidence of the fork: $(cat "$T/w$w.evidence")"
		sleep 0.2
	done
	python3 - "$T/w$w.evidence" "devid/$DIR_ID" "$ROOT3" "$FROOT3" <<'PYX' || fail "witness $w's evidence lacks the notes held and offered: $(cat "$T/w$w.evidence")"
import re, sys
t = open(sys.argv[1]).read()
origin, real, fork = sys.argv[2:5]
# One entry of the evidence has the real checkpoint 3 as held and the
# fork's as offered, both signed by the directory.
found = False
for ent in re.split(r"\n(?=evidence \d+\n)", t):
    if "\nheld:\n" not in ent or "\noffered:\n" not in ent:
        continue
    head, rest = ent.split("\nheld:\n", 1)
    held, offered = rest.split("offered:\n", 1)
    if (("\norigin: " + origin + "\n") in head and "\nreason: fork" in head and
        held.startswith(origin + "\n3\n" + real + "\n\n\u2014 " + origin + " ") and
        offered.startswith(origin + "\n3\n" + fork + "\n\n\u2014 " + origin + " ")):
        found = True
assert found, t
PYX
	"$WITNESS" status --state "$T/w$w.state" | grep -q "^devid/$DIR_ID 3 $ROOT3 " ||
		fail "witness $w does not hold the real checkpoint 3"
done
note "both witnesses refused the fork and keep the held and offered notes"
sed -n '1,4p' "$T/w1.evidence" | sed 's/^/    /'

agent_start P
wait_alert P tlog_no_quorum 15 >/dev/null
alert_json P tlog_no_quorum "$T/a.json"
python3 - "$T/a.json" "$WNAME1" "$WNAME2" "$FROOT3" <<'PYX' || fail "P's alert: $(cat "$T/a.json")"
import json, sys
a = json.load(open(sys.argv[1]))
m = a['message']
assert '0 of 2 needed' in m and sys.argv[2] in m and sys.argv[3] in m, m
assert sys.argv[4] in a['details']['checkpoint'], a
PYX
note "P (shown the fork): $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['message'])" "$T/a.json")"

q0=$(sqlite3 -cmd ".timeout 5000" "$T/fork.db" "SELECT count(*) FROM queue;")
msg_fails B --directory "$FORK_URL" send "$ALICE" -m "through the fork"
err_has "refusing the directory's log of $ALICE"
grep -qE 'witness|transparency log' "$T/msg.err" ||
	fail "devid-msg does not say that the witnesses are missing: $(cat "$T/msg.err")"
q1=$(sqlite3 -cmd ".timeout 5000" "$T/fork.db" "SELECT count(*) FROM queue;")
[ "$q0" = "$q1" ] || fail "something was queued through the fork"
note "devid-msg refused to send through the fork: $(head -n 1 "$T/msg.err")"

note "a third witness that never saw the real log cosigns the fork"
wit_start 3
tdir_stop fork
tdir_start fork "$T/fork.db" 0 --witness "$(wit_arg 1)" \
    --witness "$(wit_arg 2)" --witness "$(wit_arg 3)"
FORK_URL=$TD_URL
wait_cp "$FORK_URL" 3 15 missing missing ok

note "alice's laptop, which accepted the real checkpoint 3, is shown the fork"
agent_stop A
agent_start A --directory "$FORK_URL" --witness "$VK1" --witness "$VK2" \
    --witness "$VK3" --witness-quorum 1
wait_alert A tlog_fork 20 >/dev/null
alert_json A tlog_fork "$T/a.json"
python3 - "$T/a.json" "$ROOT3" "$FROOT3" "$WNAME3" <<'PYX' || fail "A's fork alert lacks the two notes: $(cat "$T/a.json")"
import json, sys
a = json.load(open(sys.argv[1]))
d = a['details']
real, fork, w3 = sys.argv[2:5]
assert "\n3\n" + real + "\n\n" in d['held'], d
assert "\n3\n" + fork + "\n\n" in d['shown'], d
assert "\n\u2014 " + w3 + " " in d['shown'], d
PYX
note "A: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['message'])" "$T/a.json")"

# ----------------------------------------------------------------------
note "5. a device withheld from the public log: in bob's account log, in no checkpoint"
# Written straight into the real directory's database (what its operator
# can do): the account log shows it, the transparency log never gets it.
phantom "$T/dir.db" "$BOB" ghost
wait_js B 15 "d['watcher']['seq'] == 3"
ms=$(wait_alert B tlog_inclusion 20)
note "B raised tlog_inclusion $ms ms after it saw the ghost (max_stale 5 s)"
alert_json B tlog_inclusion "$T/a.json"
python3 - "$T/a.json" <<'PYX' || fail "B's inclusion alert is wrong: $(cat "$T/a.json")"
import json, sys
a = json.load(open(sys.argv[1]))
d = a['details']
assert d['reason'] == 'withheld' and d['seq'] == 3 and d['proven_seq'] == 2, d
assert 'event 3 of ' in a['message'], a
PYX
wait_cp "$URL" 3 5 ok ok missing
[ "$(cp_field root)" = "$ROOT3" ] || fail "the real tree changed"

for n in A B P; do
	[ -f "$T/agent-$n.pid" ] && agent_stop "$n"
done
for f in "$T"/dir.log "$T"/fork.log "$T"/w1.log "$T"/w2.log "$T"/w3.log; do
	if grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$f"; then
		fail "sanitizer report in $f: $(grep -A20 -E 'Sanitizer|runtime error' "$f" | head -n 40)"
	fi
done
note "PASS"
