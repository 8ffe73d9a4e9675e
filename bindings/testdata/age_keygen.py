#!/usr/bin/env python3
"""age_keygen.py IDENTITY: write a new age X25519 identity file (as
`age-keygen -o IDENTITY`, mode 0600) and print its recipient (age1...).
Standard library only (X25519 from RFC 7748, bech32 from BIP 173), for the
binding tests that need keys without age or the hexz CLI installed."""

import os
import sys

P = 2**255 - 19
A24 = 121665
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def x25519(k: bytes, u: bytes) -> bytes:
    """X25519(k, u) (RFC 7748 section 5)."""
    kb = bytearray(k)
    kb[0] &= 248
    kb[31] &= 127
    kb[31] |= 64
    scalar = int.from_bytes(kb, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (scalar >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % P, (x2 - z2) % P
        aa, bb = a * a % P, b * b % P
        e = (aa - bb) % P
        c, d = (x3 + z3) % P, (x3 - z3) % P
        da, cb = d * a % P, c * b % P
        x3 = (da + cb) ** 2 % P
        z3 = x1 * (da - cb) ** 2 % P
        x2 = aa * bb % P
        z2 = e * (aa + A24 * e) % P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, "little")


def _polymod(values):
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32(hrp: str, data: bytes) -> str:
    """Bech32 (BIP 173) of `data` under `hrp`, lower case, no length limit (as age)."""
    acc, bits, five = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(expanded + five + [0] * 6) ^ 1
    check = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in five + check)


def keygen(path: str) -> str:
    secret = os.urandom(32)
    recipient = bech32("age", x25519(secret, (9).to_bytes(32, "little")))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# public key: {recipient}\n{bech32('age-secret-key-', secret).upper()}\n")
    return recipient


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: age_keygen.py IDENTITY")
    print(keygen(sys.argv[1]))
