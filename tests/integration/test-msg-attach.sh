#!/bin/sh
# test-msg-attach.sh - attachments (docs/protocol.md section 8) end to
# end with real agents (swtpm, SoftHSM2) and a real directory that keeps
# blobs in $T/blobs, at most 1 MiB each and 2.5 MiB per account:
#
#  - alice sends bob files with a caption (300 KiB of random bytes,
#    exactly 65536 bytes, 0 bytes): bob and alice's card save them
#    byte-identical under their own names, mode 0600, named in the text
#    output and in --json's files; a second copy of a name lands beside
#    it as "name (1)"; once every device addressed acknowledged the
#    message, nobody downloads its blob any more;
#  - the blob as stored is what the protocol says (its hash, its size);
#  - only the devices addressed download a blob (from any offset):
#    mallory (another account), alice's sending device and an unknown
#    hash get 403;
#  - mallory posts an envelope naming alice's blob: 403 blob_refused,
#    nothing queued;
#  - bob's pending store cannot be written: the files are fetched at
#    once all the same, with a warning, and the message acknowledged;
#  - a blob changed on the directory's disk: the attachment is rejected,
#    nothing is saved, the message is handled; so is one the directory
#    no longer has (reported as expired);
#  - a download cut by the network (a proxy that cuts the first blob
#    download midway and every later one at once): recv fails without
#    acknowledging and keeps the attachment pending; after a restart of
#    the directory the retry saves the file once;
#  - a file over the directory's largest blob: send fails naming the
#    limit, nothing is uploaded or posted; the directory itself refuses
#    such an upload (413), one without a session (401), bytes that are
#    not a blob (400), a chunked body (411), and keeps nothing of an
#    upload cut midway;
#  - the account's blob quota used up: send fails saying so, nothing is
#    posted.
# Nothing partial is ever left in an output directory.
set -eu
prog=test-msg-attach
. "$top_srcdir/tests/integration/test-msg-lib.sh"

command -v curl >/dev/null 2>&1 || fail "curl not found: run swtpm-ci/install-deps"
MALLORY=mallory@example.org
BLOBS=$T/blobs
BLOB_MAX=1048576
BLOB_QUOTA=2621440

# Every `devid-directory serve` of the lib runs with the blob flags: the
# lib starts "$DIRECTORY", which becomes this wrapper (the server still
# runs as devid-directory: exec).
REAL_DIRECTORY=$DIRECTORY
DIRECTORY=$T/devid-directory
cat >"$DIRECTORY" <<EOF
#!/bin/sh
[ "\$1" = serve ] || exec "$REAL_DIRECTORY" "\$@"
shift
exec "$REAL_DIRECTORY" serve --blob-dir "$BLOBS" --blob-max $BLOB_MAX \\
    --blob-quota $BLOB_QUOTA "\$@"
EOF
chmod 755 "$DIRECTORY"
mkdir -p "$BLOBS"
chmod 700 "$BLOBS"

cast_start
account_add "$MALLORY"
hsm_token mallorylaptop
# shellcheck disable=SC2086
init_device M "$MALLORY" laptop "$HSM_URI" --pin-file "$T/pin" $AGENT_FLAGS
register_device M
agent_start M

# queued DEVICE_ID: envelopes queued for a device.
queued() {
	sql "SELECT count(*) FROM queue WHERE device='$1';"
}

# blob_list: the hashes of the blobs the directory keeps, sorted.
blob_list() {
	sql "SELECT hash FROM blobs ORDER BY hash;"
}

# new_blob BEFORE_FILE: the one hash kept now that BEFORE_FILE (an
# earlier blob_list) does not hold.
new_blob() {
	blob_list >"$T/blobs.after"
	_nb=$(comm -13 "$1" "$T/blobs.after")
	[ "$(echo "$_nb" | grep -c .)" -eq 1 ] ||
		fail "expected one new blob, the directory keeps: $(cat "$T/blobs.after")"
	echo "$_nb"
}

# no_new_blob BEFORE_FILE WHAT: the directory keeps no blob that
# BEFORE_FILE does not hold (it may have removed some meanwhile).
no_new_blob() {
	blob_list >"$T/blobs.after"
	[ -z "$(comm -13 "$1" "$T/blobs.after")" ] || fail "$2"
}

# blob_file HASH: the file under $BLOBS whose bytes hash to HASH.
blob_file() {
	python3 - "$BLOBS" "$1" <<'EOF' ||
import hashlib, os, sys
for d, _, names in os.walk(sys.argv[1]):
    for n in names:
        p = os.path.join(d, n)
        if hashlib.sha256(open(p, "rb").read()).hexdigest() == sys.argv[2]:
            print(p)
            sys.exit(0)
sys.exit(1)
EOF
		fail "no file under the blob directory holds blob $1: $(find "$BLOBS" -type f)"
}

# token NAME: the directory session of device NAME's agent (op session).
token() {
	rawcall "$1" '{"op":"session"}' |
	    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' ||
		fail "no session from agent $1"
}

# http TOKEN METHOD PATH [CURL_ARGS...]: one request to the directory;
# prints the status, the answer's body is in $T/http.body.
http() {
	_tok=$1
	_m=$2
	_p=$3
	shift 3
	if [ -n "$_tok" ]; then
		curl -s -o "$T/http.body" -w '%{http_code}' -X "$_m" \
		    -H "Authorization: Bearer $_tok" "$@" "$URL$_p" || true
	else
		curl -s -o "$T/http.body" -w '%{http_code}' -X "$_m" \
		    "$@" "$URL$_p" || true
	fi
}

# http_expect STATUS CODE TOKEN METHOD PATH [CURL_ARGS...]: the answer
# has that status and, CODE not empty, that error word.
http_expect() {
	_want=$1
	_code=$2
	shift 2
	_st=$(http "$@")
	[ "$_st" = "$_want" ] ||
		fail "$2 $3: HTTP $_st, expected $_want: $(head -c 300 "$T/http.body")"
	[ -z "$_code" ] ||
		python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["error"]["code"] != sys.argv[2])' \
		    "$T/http.body" "$_code" ||
		fail "$2 $3: expected the error word $_code: $(head -c 300 "$T/http.body")"
}

# no_partial DIR: DIR holds only the files named after it, nothing
# hidden or temporary.
no_partial() {
	_d=$1
	shift
	ls -A "$_d" >"$T/ls.out"
	printf '%s\n' "$@" | grep . | sort >"$T/ls.want" || true
	sort "$T/ls.out" | cmp -s - "$T/ls.want" ||
		fail "$_d holds $(tr '\n' '|' <"$T/ls.out"), expected only $(tr '\n' '|' <"$T/ls.want")"
}

# mode_600 FILE
mode_600() {
	[ "$(stat -c %a "$1")" = 600 ] ||
		fail "$1 has mode $(stat -c %a "$1"), expected 600"
}

mkdir -p "$T/in" "$T/dl-B" "$T/dl-C"
head -c 307200 /dev/urandom >"$T/in/report.bin"
head -c 65536 /dev/urandom >"$T/in/segment.bin"
: >"$T/in/empty.txt"

note "mallory writes to bob first (an envelope of his to capture)"
msg_ok M send "$BOB" -m "hi bob, mallory here"
inbox_copy "$ID_B" "$T/mallory.json"
msg_ok B recv
out_has "hi bob, mallory here"

note "alice sends bob a file with a caption"
blob_list >"$T/blobs.before"
msg_ok A send "$BOB" -f "$T/in/report.bin" -m "the report, as promised"
out_has "(307200 bytes)"
H1=$(new_blob "$T/blobs.before")
[ "$(queued "$ID_B")" -eq 1 ] && [ "$(queued "$ID_C")" -eq 1 ] ||
	fail "the message is not queued for bob and alice's card"
# The blob as stored: 41 header bytes, the file, a tag per 64 KiB
# segment (5 of them), hashing to the name the message gives it.
F1=$(blob_file "$H1")
cp "$F1" "$T/blob1"
[ "$(stat -c %s "$F1")" -eq $((41 + 307200 + 16 * 5)) ] ||
	fail "blob of $(stat -c %s "$F1") bytes, expected $((41 + 307200 + 80))"
[ "$(head -c 5 "$F1" | od -An -tx1 | tr -d ' \n')" = 4456535401 ] ||
	fail "the blob does not start with DVST version 1"
python3 -c 'import sys; sys.exit(open(sys.argv[1], "rb").read(64) in open(sys.argv[2], "rb").read())' \
    "$T/in/report.bin" "$F1" || fail "the directory holds the plaintext"
[ "$(sql "SELECT size FROM blobs WHERE hash='$H1';")" -eq $((41 + 307200 + 80)) ] ||
	fail "the directory records another size for $H1"

note "only the devices addressed download the blob"
TOK_B=$(token B)
TOK_A=$(token A)
TOK_M=$(token M)
http_expect 200 "" "$TOK_B" GET "/v1/blobs/$H1"
[ "$(sha256sum <"$T/http.body" | cut -d' ' -f1)" = "$H1" ] ||
	fail "bob downloaded other bytes than blob $H1"
http_expect 206 "" "$TOK_B" GET "/v1/blobs/$H1" -H "Range: bytes=1000-"
[ "$(stat -c %s "$T/http.body")" -eq $((41 + 307200 + 80 - 1000)) ] ||
	fail "a ranged download gave $(stat -c %s "$T/http.body") bytes"
http_expect 416 "" "$TOK_B" GET "/v1/blobs/$H1" \
    -H "Range: bytes=$((41 + 307200 + 80))-"
http_expect 403 not_addressed "$TOK_M" GET "/v1/blobs/$H1"
http_expect 403 not_addressed "$TOK_A" GET "/v1/blobs/$H1"
http_expect 403 not_addressed "$TOK_B" GET \
    "/v1/blobs/$(printf '%064d' 0 | tr 0 a)"
http_expect 401 "" "" GET "/v1/blobs/$H1"

note "mallory posts an envelope naming alice's blob"
http_expect 403 blob_refused "$TOK_M" POST "/v1/messages?blobs=$H1" \
    -H "Content-Type: application/json" --data-binary "@$T/mallory.json"
[ "$(queued "$ID_B")" -eq 1 ] || fail "mallory's envelope was queued"

note "bob and alice's card receive the file"
msg_ok B recv -o "$T/dl-B"
out_has "the report, as promised"
out_has "saved as $T/dl-B/report.bin"
cmp "$T/in/report.bin" "$T/dl-B/report.bin" || fail "bob saved another file"
mode_600 "$T/dl-B/report.bin"
no_partial "$T/dl-B" report.bin
msg_ok C recv -o "$T/dl-C"
out_has "the report, as promised"
cmp "$T/in/report.bin" "$T/dl-C/report.bin" || fail "alice's card saved another file"
mode_600 "$T/dl-C/report.bin"
no_partial "$T/dl-C" report.bin
[ "$(queued "$ID_B")" -eq 0 ] && [ "$(queued "$ID_C")" -eq 0 ] ||
	fail "the message was not acknowledged"
# Both addressed devices acknowledged it: nobody may download the blob
# any more (the directory deletes it at its next sweep, section 8.4).
http_expect 403 not_addressed "$TOK_B" GET "/v1/blobs/$H1"

note "a 64 KiB file and an empty one; --json names the files"
msg_ok A send "$BOB" -f "$T/in/segment.bin" -t application/x-test
msg_ok A send "$BOB" -f "$T/in/empty.txt" -m "nothing in it"
msg_ok B recv -o "$T/dl-B" --json
python3 - "$T/msg.out" "$T/dl-B" <<'EOF' || fail "recv --json: $(cat "$T/msg.out")"
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 2, lines
want = {"segment.bin": 65536, "empty.txt": 0}
seen = {}
for m in lines:
    assert m["status"] == "ok", m
    files = m["files"]
    assert isinstance(files, list) and len(files) == 1, m
    f = files[0]
    name = f["name"]
    assert name in want and name not in seen, f
    seen[name] = f
    assert f["file"] == os.path.join(sys.argv[2], name), f
    assert f["size"] == want[name] and "error" not in f, f
    assert f["type"] == ("application/x-test" if name == "segment.bin"
                         else "application/octet-stream"), f
assert sorted(seen) == sorted(want), seen
EOF
cmp "$T/in/segment.bin" "$T/dl-B/segment.bin" || fail "the 64 KiB file differs"
[ -f "$T/dl-B/empty.txt" ] && [ ! -s "$T/dl-B/empty.txt" ] ||
	fail "the empty file was not saved empty"
mode_600 "$T/dl-B/segment.bin"
mode_600 "$T/dl-B/empty.txt"
no_partial "$T/dl-B" report.bin segment.bin empty.txt
msg_ok C recv -o "$T/dl-C"

note "a second copy of a name lands beside it"
msg_ok A send "$BOB" -f "$T/in/report.bin"
msg_ok B recv -o "$T/dl-B"
out_has "saved as $T/dl-B/report.bin (1)"
cmp "$T/dl-C/report.bin" "$T/dl-B/report.bin" || fail "the first copy was overwritten"
cmp "$T/dl-C/report.bin" "$T/dl-B/report.bin (1)" || fail "the second copy differs"
mode_600 "$T/dl-B/report.bin (1)"
no_partial "$T/dl-B" report.bin "report.bin (1)" segment.bin empty.txt
msg_ok C recv -o "$T/dl-C"

note "a pending store that cannot be written: the files are fetched at once"
PD=$T/B/data/devid/pending
[ -z "$(ls -A "$PD" 2>/dev/null)" ] || fail "$PD is not empty: $(ls -A "$PD")"
rm -rf "$PD"
: >"$PD"
head -c 150000 /dev/urandom >"$T/in/nopending.bin"
msg_ok A send "$BOB" -f "$T/in/nopending.bin"
mkdir "$T/dl-NP"
msg_ok B recv -o "$T/dl-NP"
grep -q "warning: inbox entry .*fetched now" "$T/msg.err" ||
	fail "no warning that the references could not be kept: $(cat "$T/msg.err")"
cmp "$T/in/nopending.bin" "$T/dl-NP/nopending.bin" ||
	fail "the file was not saved whole without a pending store"
[ "$(queued "$ID_B")" -eq 0 ] || fail "the message was not acknowledged"
no_partial "$T/dl-NP" nopending.bin
rm -f "$PD"
msg_ok C recv -o "$T/dl-C"

note "a blob changed on the directory's disk is rejected"
head -c 200000 /dev/urandom >"$T/in/changed.bin"
blob_list >"$T/blobs.before"
msg_ok A send "$BOB" -f "$T/in/changed.bin" -m "changed on the way"
H2=$(new_blob "$T/blobs.before")
F2=$(blob_file "$H2")
python3 - "$F2" <<'EOF' || fail "cannot change $F2"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(100000)
    b = f.read(1)
    f.seek(100000)
    f.write(bytes([b[0] ^ 1]))
EOF
mkdir "$T/dl-B2"
msg B recv -o "$T/dl-B2" >/dev/null 2>&1 || true
grep -qi "reject" "$T/msg.out" "$T/msg.err" ||
	fail "the changed blob was not reported rejected: $(cat "$T/msg.out" "$T/msg.err")"
grep -qF "changed.bin" "$T/msg.out" "$T/msg.err" ||
	fail "the rejected attachment is not named: $(cat "$T/msg.out" "$T/msg.err")"
grep -qF "changed on the way" "$T/msg.out" ||
	fail "the message itself was not shown: $(cat "$T/msg.out" "$T/msg.err")"
no_partial "$T/dl-B2"
[ "$(queued "$ID_B")" -eq 0 ] ||
	fail "the message with a rejected attachment was not handled"
msg C recv -o "$T/dl-B2" >/dev/null 2>&1 || true
no_partial "$T/dl-B2"

note "a blob the directory no longer has is reported as expired"
head -c 1000 /dev/urandom >"$T/in/gone.bin"
blob_list >"$T/blobs.before"
msg_ok A send "$BOB" -f "$T/in/gone.bin"
H3=$(new_blob "$T/blobs.before")
F3=$(blob_file "$H3")
# What the directory's sweep does once a blob is past its days.
sql "DELETE FROM blobs WHERE hash='$H3';"
rm -f "$F3"
mkdir "$T/dl-B5"
msg_ok B recv -o "$T/dl-B5"
out_has "'gone.bin' expired"
no_partial "$T/dl-B5"
[ "$(queued "$ID_B")" -eq 0 ] || fail "the message with an expired file was not handled"
msg_ok C recv -o "$T/dl-B5"
no_partial "$T/dl-B5"

note "a download cut by the network stays pending; the retry saves it once"
cat >"$T/cutproxy.py" <<'EOF'
# A TCP proxy to the directory that cuts the answer to the first blob
# download after 20000 bytes and closes every later one before it
# begins; everything else passes.
import os, socket, sys, threading
up = ("127.0.0.1", int(sys.argv[1]))
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(16)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
lock = threading.Lock()
budget = [20000]

def serve(c):
    s = socket.create_connection(up)
    cut = threading.Event()
    left = [0]
    def c2s():
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                if b"GET /v1/blobs/" in d:
                    with lock:
                        left[0], budget[0] = budget[0], 0
                    cut.set()
                    if left[0] == 0:
                        break
                s.sendall(d)
        except OSError:
            pass
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    threading.Thread(target=c2s, daemon=True).start()
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            if cut.is_set():
                c.sendall(d[:left[0]])
                left[0] -= min(left[0], len(d))
                if left[0] == 0:
                    break
            else:
                c.sendall(d)
    except OSError:
        pass
    for x in (c, s):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        x.close()

while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
python3 "$T/cutproxy.py" "$DIR_PORT" "$T/proxy.port" >"$T/proxy.log" 2>&1 &
echo $! >"$T/proxy.pid"
i=0
while [ ! -s "$T/proxy.port" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || fail "the proxy did not start: $(cat "$T/proxy.log")"
	sleep 0.1
done
PROXY=http://127.0.0.1:$(cat "$T/proxy.port")
head -c 300000 /dev/urandom >"$T/in/later.bin"
msg_ok A send "$BOB" -f "$T/in/later.bin" -m "try again"
mkdir "$T/dl-B3"
# Not msg_fails: a sanitizer report must reach the log.
rc=0
msg B --directory "$PROXY" recv -o "$T/dl-B3" --json || rc=$?
[ "$rc" -eq 1 ] || fail "recv of a cut download exited with $rc, expected 1"
python3 - "$T/msg.out" <<'EOF' || fail "recv --json of a cut download: $(cat "$T/msg.out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 1 and lines[0]["status"] == "incomplete", lines
f = lines[0]["files"]
assert len(f) == 1 and f[0]["error"] == "pending" and "file" not in f[0], f
EOF
grep -qiE "network|unreachable|connection|transfer|try again" "$T/msg.err" ||
	fail "the cut download is not reported as a network failure: $(cat "$T/msg.out" "$T/msg.err")"
no_partial "$T/dl-B3"
[ "$(queued "$ID_B")" -eq 1 ] || fail "the message was acknowledged after a cut download"
ls "$T/B/data/devid/pending/"* >/dev/null 2>&1 ||
	fail "nothing pending under $T/B/data/devid/pending"
for f in "$T/B/data/devid/pending/"*; do
	mode_600 "$f"
done
[ "$(stat -c %a "$T/B/data/devid/pending")" = 700 ] ||
	fail "the pending directory has mode $(stat -c %a "$T/B/data/devid/pending")"
proc_stop "$(cat "$T/proxy.pid")"
rm -f "$T/proxy.pid"
# The blob outlives a restart of the directory.
dir_stop
dir_start "$DIR_PORT"
msg_ok B recv -o "$T/dl-B3"
cmp "$T/in/later.bin" "$T/dl-B3/later.bin" || fail "the retry saved another file"
mode_600 "$T/dl-B3/later.bin"
no_partial "$T/dl-B3" later.bin
[ "$(queued "$ID_B")" -eq 0 ] || fail "the retried message was not acknowledged"
[ -z "$(ls -A "$T/B/data/devid/pending" 2>/dev/null)" ] ||
	fail "the pending store still holds $(ls -A "$T/B/data/devid/pending")"
msg_ok B recv -o "$T/dl-B3"
no_partial "$T/dl-B3" later.bin
msg_ok C recv -o "$T/dl-C"
cmp "$T/in/later.bin" "$T/dl-C/later.bin" || fail "alice's card saved another file"

note "a file over the directory's largest blob"
head -c 2097152 /dev/urandom >"$T/in/big.bin"
blob_list >"$T/blobs.before"
qb=$(queued "$ID_B")
msg_fails A send "$BOB" -f "$T/in/big.bin" -m "too big"
grep -qE "1048576|1 MiB|1\.0 MiB|1024 KiB" "$T/msg.err" ||
	fail "the refusal does not name the limit: $(cat "$T/msg.out" "$T/msg.err")"
[ "$(queued "$ID_B")" -eq "$qb" ] || fail "something was posted"
no_new_blob "$T/blobs.before" "something was uploaded"
# The directory's own check, before it reads the body, and without a
# session.
http_expect 413 too_large "$TOK_A" POST /v1/blobs \
    -H "Content-Type: application/octet-stream" --data-binary "@$T/in/big.bin"
http_expect 401 "" "" POST /v1/blobs \
    -H "Content-Type: application/octet-stream" --data-binary "@$T/in/segment.bin"
# Bytes that are not a blob, a body without a length, one cut midway.
http_expect 400 bad_request "$TOK_A" POST /v1/blobs \
    -H "Content-Type: application/octet-stream" --data-binary "@$T/in/segment.bin"
http_expect 411 length_required "$TOK_A" POST /v1/blobs \
    -H "Content-Type: application/octet-stream" \
    -H "Transfer-Encoding: chunked" --data-binary "@$T/in/segment.bin"
nfiles=$(find "$BLOBS" -type f | wc -l)
python3 - "$DIR_PORT" "$TOK_A" "$T/blob1" <<'EOF' || fail "the cut upload"
import socket, sys, time
blob = open(sys.argv[3], "rb").read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(("POST /v1/blobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Authorization: Bearer %s\r\n"
           "Content-Type: application/octet-stream\r\n"
           "Content-Length: %d\r\n\r\n" % (sys.argv[2], len(blob))).encode())
s.sendall(blob[:len(blob) // 2])
time.sleep(0.3)
s.close()
EOF
sleep 0.5
no_new_blob "$T/blobs.before" "a refused upload was kept"
[ "$(find "$BLOBS" -type f | wc -l)" -le "$nfiles" ] ||
	fail "a cut upload left a file: $(find "$BLOBS" -type f)"

note "the account's blob quota used up"
head -c 1000000 /dev/urandom >"$T/in/q1.bin"
head -c 1000000 /dev/urandom >"$T/in/q2.bin"
head -c 1000000 /dev/urandom >"$T/in/q3.bin"
msg_ok M send "$BOB" -f "$T/in/q1.bin"
msg_ok M send "$BOB" -f "$T/in/q2.bin"
qb=$(queued "$ID_B")
blob_list >"$T/blobs.before"
msg_fails M send "$BOB" -f "$T/in/q3.bin"
grep -qi "quota" "$T/msg.err" ||
	fail "the refusal does not name the quota: $(cat "$T/msg.out" "$T/msg.err")"
[ "$(queued "$ID_B")" -eq "$qb" ] || fail "something was posted over the quota"
no_new_blob "$T/blobs.before" "a blob over the quota was kept"
mkdir "$T/dl-B4"
msg_ok B recv -o "$T/dl-B4"
cmp "$T/in/q1.bin" "$T/dl-B4/q1.bin" && cmp "$T/in/q2.bin" "$T/dl-B4/q2.bin" ||
	fail "bob did not get mallory's files"
no_partial "$T/dl-B4" q1.bin q2.bin

for n in A B C M; do
	agent_alive "$n"
	agent_stop "$n"
done
dir_stop
! grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' \
    "$T/directory.log" || fail "the directory: sanitizer report: $(grep -A20 -E 'Sanitizer|runtime error' "$T/directory.log" | head -n 40)"
note "PASS"
