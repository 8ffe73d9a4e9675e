#!/usr/bin/env python3
"""An independent reader of format 1.5's encrypted archives, written from
spec/FORMAT.md (sections 4 to 7 to find the entries, 16 to decrypt them)
and nothing else: it unwraps the file key of `encrypted-passphrase` with
the published passphrase (Argon2id) and of `encrypted-x25519` with the
published identity (X25519, HKDF-SHA256), decrypts the manifest and every
block (AES-256-GCM-SIV), checks the keyed block hashes and the keyed
source hash, and compares the bytes with the vector's `.expected`. Uses
`cryptography` and `blake3`, no hexz code.

usage: spec_encryption.py [VECTORS_DIR]
"""
import os
import struct
import sys

import blake3
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Section 16.12: the published test keys (never use them for anything else).
PASSPHRASE = b"hexz test vector passphrase"
IDENTITY = bytes([0x24] * 32)
ENCRYPTED = 1 << 4


def u(fmt, b, at):
    return struct.unpack_from("<" + fmt, b, at)[0]


def derive(context, key):
    return blake3.blake3(key, derive_key_context=context).digest()


def unwrap(kek, wrapped, key_id):
    # ChaCha20-Poly1305, nonce 0^12, associated data the key id.
    return ChaCha20Poly1305(kek).decrypt(bytes(12), wrapped, key_id)


def file_key(section, key_id):
    at, count = 48, u("H", section, 12)
    for _ in range(count):
        kind, reserved, length = section[at], section[at + 1], u("H", section, at + 2)
        assert reserved == 0
        body = section[at + 4:at + 4 + length]
        at += 4 + length
        if kind == 1:
            assert length == 76
            salt, m, t, p = body[:16], u("I", body, 16), u("I", body, 20), u("I", body, 24)
            assert 1 <= p <= 16 and 1 <= t <= 16 and 8 * p <= m <= 1 << 20, "Argon2 cost out of the reader's limits"
            kek = Argon2id(salt=salt, length=32, iterations=t, lanes=p, memory_cost=m).derive(PASSPHRASE)
            return unwrap(kek, body[28:76], key_id)
        if kind == 2:
            assert length == 80
            share = body[:32]
            me = X25519PrivateKey.from_private_bytes(IDENTITY)
            recipient = me.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            shared = me.exchange(X25519PublicKey.from_public_bytes(share))
            assert shared != bytes(32)
            kek = HKDF(hashes.SHA256(), 32, share + recipient, b"age-encryption.org/v1/X25519").derive(shared)
            return unwrap(kek, body[32:80], key_id)
    raise AssertionError("no stanza this oracle holds a key for")


def check(hxz, expected):
    assert hxz[:8] == b"HEXZ\0\r\n\x1a"
    assert u("H", hxz, 10) == 5 and u("Q", hxz, 16) & ENCRYPTED
    footer = hxz[-192:]
    assert footer[:8] == b"HXZFOOT\0"
    virtual_size, block_count = u("Q", footer, 8), u("Q", footer, 16)
    directory_offset, page_count = u("Q", footer, 24), u("I", footer, 32)
    moff, mlen = u("Q", footer, 40), u("Q", footer, 48)
    # Directory and manifest hashes stay plain, over the stored bytes.
    assert blake3.blake3(hxz[directory_offset:moff]).digest() == footer[104:136]
    region = hxz[moff:moff + mlen]
    assert blake3.blake3(region).digest() == footer[136:168]

    # The key section (16.4), the file key (16.5, 16.6), the manifest (16.7).
    assert region[:8] == b"HXZKEYS\0"
    length = u("I", region, 8)
    assert region[14:16] == b"\0\0" and region[44:48] == bytes(4)
    section, key_id, nonce = region[:length], region[16:32], region[32:44]
    fk = file_key(section, key_id)
    assert derive("hexz 2026-12-02 key id", fk)[:16] == key_id, "wrong key"
    block_key = derive("hexz 2026-12-02 block encryption", fk)
    hash_key = derive("hexz 2026-12-02 block hash", fk)
    manifest_key = derive("hexz 2026-12-02 manifest encryption", fk)
    manifest = AESGCMSIV(manifest_key).decrypt(nonce, region[length:] + section[-16:], section[:-16])
    assert manifest[:8] == b"HXZMANI\0" and len(manifest) == mlen - length

    # Every block (16.2): decrypt, decode (codec none here), keyed hash.
    out = bytearray()
    blocks = 0
    for p in range(page_count):
        d = directory_offset + 56 * p
        page_offset, count = u("Q", hxz, d + 8), u("I", hxz, d + 16)
        page = hxz[page_offset:page_offset + 72 * count]
        assert blake3.blake3(page).digest() == hxz[d + 24:d + 56]
        for i in range(count):
            e = page[72 * i:72 * i + 72]
            voff, soff, vlen, slen = u("Q", e, 0), u("Q", e, 8), u("I", e, 24), u("I", e, 28)
            codec, filt, width, location, param = e[32], e[33], e[34], e[35], u("I", e, 36)
            keyed, tag = e[40:56], e[56:72]
            assert voff == len(out) and location == 0
            assert codec == 0 and filt == 0 and slen == vlen, "this oracle decodes codec none"
            aad = keyed + struct.pack("<IBBBI", vlen, codec, filt, width, param)
            plain = AESGCMSIV(block_key).decrypt(keyed[:12], hxz[soff:soff + slen] + tag, aad)
            assert blake3.blake3(plain, key=hash_key).digest()[:16] == keyed
            out += plain
            blocks += 1
    assert blocks == block_count and len(out) == virtual_size
    assert bytes(out) == expected
    assert blake3.blake3(bytes(out), key=hash_key).digest() == footer[72:104], "keyed source_hash"
    return blocks


def main():
    vectors = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../spec/vectors")
    for name in ("encrypted-passphrase", "encrypted-x25519"):
        with open(os.path.join(vectors, name + ".hxz"), "rb") as f:
            hxz = f.read()
        with open(os.path.join(vectors, name + ".expected"), "rb") as f:
            expected = f.read()
        blocks = check(hxz, expected)
        print(f"{name}: file key unwrapped, manifest and {blocks} blocks decrypted, keyed hashes match, bytes match")


if __name__ == "__main__":
    main()
