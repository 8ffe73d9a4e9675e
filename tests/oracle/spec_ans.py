#!/usr/bin/env python3
"""An independent decoder of format 1.3's entropy-coded blocks, written
from spec/FORMAT.md (sections 4 to 6 to find the entries, 7.2 to decode
them) and nothing else: it walks the test vectors' block entries and
decodes every `ans` block held in the archive itself, checking the bytes
against the vector's `.expected` (and, for delta blocks, the parent's
`.expected` as the base). Pure Python, no hexz code.

usage: spec_ans.py [VECTORS_DIR]
"""
import os
import struct
import sys

LANES = 4


def u(fmt, b, at):
    return struct.unpack_from("<" + fmt, b, at)[0]


def entries(hxz):
    footer = hxz[-192:]
    assert footer[:8] == b"HXZFOOT\0"
    directory_offset, page_count = u("Q", footer, 24), u("I", footer, 32)
    for p in range(page_count):
        d = directory_offset + 56 * p
        page_offset, count = u("Q", hxz, d + 8), u("I", hxz, d + 16)
        for i in range(count):
            e = page_offset + 72 * i
            yield {
                "voff": u("Q", hxz, e), "soff": u("Q", hxz, e + 8), "base": u("Q", hxz, e + 16),
                "vlen": u("I", hxz, e + 24), "slen": u("I", hxz, e + 28), "codec": hxz[e + 32],
                "filter": hxz[e + 33], "width": hxz[e + 34], "location": hxz[e + 35],
            }


class Reader:
    def __init__(self, b):
        self.b, self.at = b, 0

    def take(self, n):
        assert self.at + n <= len(self.b), "truncated"
        s = self.b[self.at:self.at + n]
        self.at += n
        return s

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return u("I", self.take(4), 0)


def lane(n, k):
    return k * n // LANES, (k + 1) * n // LANES


def stream(r, n):
    mode = r.u8()
    if mode == 0:
        return list(r.take(n))
    if mode == 1:
        return [r.u8()] * n
    assert mode == 2, "mode"
    count = r.u8() + 1
    assert count >= 2
    symbols = list(r.take(count))
    assert all(a < b for a, b in zip(symbols, symbols[1:]))
    freqs = [u("H", r.take(2), 0) for _ in range(count)]
    assert all(f >= 1 for f in freqs) and sum(freqs) == 4096
    cum = [sum(freqs[:j]) for j in range(count)]
    lengths = [r.u32() for _ in range(LANES)]
    words = [[u("I", r.take(4), 0) for _ in range(L)] for L in lengths]
    out = [0] * n
    for k in range(LANES):
        w = words[k]
        state = 0
        if w:
            state = w.pop()
            assert state != 0
            if w:
                state = state * 2**32 + w.pop()
        a, b = lane(n, k)
        for i in range(a, b):
            q = state % 4096
            j = max(j for j in range(count) if cum[j] <= q)
            out[i] = symbols[j]
            state = (state // 4096) * freqs[j] + q - cum[j]
            if state < 2**32 and w:
                state = state * 2**32 + w.pop()
        assert not w and state == 0, "lane not consumed exactly"
    return out


def float_ans(stored, w, length):
    r = Reader(stored)
    n = length // w
    streams = [stream(r, n) for _ in range(w)]
    out = bytearray()
    t = 8 * w
    for i in range(n):
        e, sm = streams[0][i], streams[1][i]
        x = ((sm & 128) << (t - 8)) | (e << (t - 9)) | ((sm & 127) << (t - 16))
        if w == 4:
            x |= (streams[2][i] << 8) | streams[3][i]
        out += x.to_bytes(w, "little")
    out += r.take(length - n * w)
    assert r.at == len(stored)
    return bytes(out)


def delta_ans(stored, w, base):
    r = Reader(stored)
    n = len(base) // w
    K = r.u8()
    assert K <= (0 if w == 8 else 128)
    dictionary = [int.from_bytes(r.take(w), "little") for _ in range(K)]
    symbols = stream(r, n)
    lengths = [r.u32() for _ in range(LANES)]
    out = bytearray()
    mod = 2 ** (8 * w)
    for k in range(LANES):
        raw = r.take(lengths[k])
        bits = int.from_bytes(raw, "little")
        used = 0
        a, b = lane(n, k)
        for i in range(a, b):
            s = symbols[i]
            if w < 8 and s >= 128:
                d = dictionary[s - 128]
            else:
                slot, sign = s >> 1, s & 1
                assert slot <= 16 * w - 1
                if slot < 4:
                    m = slot
                else:
                    e = slot // 2 - 1
                    m = ((2 + (slot & 1)) << e) + ((bits >> used) & ((1 << e) - 1))
                    used += e
                d = (-m if sign else m) % mod
            be = int.from_bytes(base[i * w:(i + 1) * w], "little")
            out += ((be + d) % mod).to_bytes(w, "little")
        assert used <= 8 * len(raw) < used + 8 and bits >> used == 0, "raw bits not consumed exactly"
    tail = r.take(len(base) - n * w)
    out += bytes(t ^ b for t, b in zip(tail, base[n * w:]))
    assert r.at == len(stored)
    return bytes(out)


def main():
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../spec/vectors")
    read = lambda name: open(os.path.join(vectors, name), "rb").read()
    parent = read("delta-parent.expected")
    checked = {}
    for name in ("ans-floats", "ans-delta-child"):
        hxz, expected = read(name + ".hxz"), read(name + ".expected")
        for e in entries(hxz):
            if e["codec"] != 3 or e["location"] != 0:
                continue
            stored = hxz[e["soff"]:e["soff"] + e["slen"]]
            want = expected[e["voff"]:e["voff"] + e["vlen"]]
            if e["filter"] == 6:
                got = float_ans(stored, e["width"], e["vlen"])
            else:
                assert e["filter"] == 7
                got = delta_ans(stored, e["width"], parent[e["base"]:e["base"] + e["vlen"]])
            assert got == want, f"{name}: block at {e['voff']} decodes differently"
            checked[e["filter"]] = checked.get(e["filter"], 0) + 1
    assert checked.get(6) and checked.get(7), checked
    print(f"spec_ans: {checked.get(6)} float-ans and {checked.get(7)} delta-ans blocks decoded from the spec alone")


if __name__ == "__main__":
    main()
