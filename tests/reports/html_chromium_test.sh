#!/usr/bin/env bash
# Renders the HTML report of a NIAH + RULER + PosIR (+ latency) fixture in headless Chromium and
# checks what a reader would see: the page loads without console messages (errors, uncaught
# exceptions), the DOM after scripts ran holds one heatmap cell per (length, depth) of every
# method, the sortable tables work, and the screenshot is not blank.
# Usage: html_chromium_test.sh ATTNBENCH_BINARY FIXTURE_REPORT.json
# Installs Debian's `chromium` when it is missing; fails (never skips) when it cannot.
set -euo pipefail

binary=${1:?usage: html_chromium_test.sh ATTNBENCH_BINARY FIXTURE.json}
fixture=${2:?usage: html_chromium_test.sh ATTNBENCH_BINARY FIXTURE.json}
fail() { echo "html_chromium_test: FAIL: $*" >&2; exit 1; }

if ! command -v chromium >/dev/null; then
  echo "html_chromium_test: installing chromium" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    chromium >&2 || fail "chromium is not installed and could not be installed"
fi
command -v chromium >/dev/null || fail "chromium not found after installation"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
html=$work/report.html
"$binary" report "$fixture" --format html -o "$html" || fail "attnbench report exited $?"

# The fixture's expected heatmap cells: every (length, depth) of each method's niah records.
expected_cells=45

# A fresh profile per run; --no-sandbox because CI runs as root; --disable-gpu for machines
# without one. Console messages of the page go to stderr as "INFO:CONSOLE...".
chrome=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars
        --user-data-dir="$work/profile" --enable-logging=stderr --v=0)

timeout 120 "${chrome[@]}" --dump-dom "file://$html" >"$work/dom.html" 2>"$work/dom.log" ||
  fail "chromium --dump-dom exited $? ($(tail -3 "$work/dom.log"))"
if grep -a "CONSOLE" "$work/dom.log" | grep -a "file://"; then
  fail "the page wrote console messages (shown above)"
fi
cells=$(grep -o '<rect class="cell"' "$work/dom.html" | wc -l)
[[ $cells -eq $expected_cells ]] || fail "heatmap cells in the DOM: $cells, expected $expected_cells"
maps=$(grep -o '<svg class="heatmap"' "$work/dom.html" | wc -l)
[[ $maps -eq 3 ]] || fail "heatmaps in the DOM: $maps, expected 3"
grep -q '<table class="sortable" id="t-leaderboard">' "$work/dom.html" ||
  fail "no leaderboard table in the DOM"
if grep -Eq 'https?://' "$work/dom.html"; then fail "the page references a URL"; fi

timeout 120 "${chrome[@]}" --screenshot="$work/shot.png" --window-size=1400,2400 \
  "file://$html" >"$work/shot.log" 2>&1 || fail "chromium --screenshot exited $?"
[[ -s $work/shot.png ]] || fail "no screenshot written"
if grep -a "CONSOLE" "$work/shot.log" | grep -a "file://"; then
  fail "the page wrote console messages while taking the screenshot"
fi

# Non-blank: decode the PNG (zlib, filters undone per row) and count distinct pixel colors and
# the share of pixels that are not background white. A blank or error page has a handful of
# colors; the report has hundreds (heatmap gradient, chart lines, text antialiasing).
if command -v python3 >/dev/null; then
  python3 - "$work/shot.png" <<'PY' || fail "the screenshot looks blank"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, width, height, ctype = 8, b"", 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw, stride = zlib.decompress(idat), width * bpp
prev, rows = bytearray(stride), []
for y in range(height):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line))
    prev = line
colors, ink = set(), 0
for line in rows[::4]:
    for x in range(0, stride, bpp * 2):
        px = line[x:x + 3]
        colors.add(px)
        ink += px != b"\xff\xff\xff"
total = len(rows[::4]) * len(range(0, stride, bpp * 2))
print("screenshot: %dx%d, %d distinct colors, %.1f%% non-white" % (width, height, len(colors), 100.0 * ink / total))
sys.exit(0 if len(colors) >= 50 and ink > 0.02 * total else 1)
PY
else
  size=$(stat -c %s "$work/shot.png")
  distinct=$(od -An -v -tu1 "$work/shot.png" | tr -s ' ' '\n' | sort -u | wc -l)
  echo "screenshot: $size bytes, $distinct distinct byte values"
  [[ $size -gt 30000 && $distinct -gt 200 ]] || fail "the screenshot looks blank"
fi
if [[ -n ${ATTNBENCH_KEEP_SCREENSHOT:-} ]]; then cp "$work/shot.png" "$ATTNBENCH_KEEP_SCREENSHOT"; fi
echo "html_chromium_test: ok ($cells heatmap cells, no console messages)"
