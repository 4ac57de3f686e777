"""X-Wing identities, HPKE wrapping and age interop (CRYPTO.md §1.1, Appendix B.9)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from sigmavault.engine.errors import IntegrityError
from sigmavault.engine.format import bech32
from sigmavault.engine.keys import xwing
from sigmavault.engine.keys.secret import Secret
from sigmavault.engine.keys.slots import XwingSlot, open_xwing, slot_from_json, xwing_context

# From the age specification (C2SP age.md, "The MLKEM768-X25519 hybrid post-quantum recipient type"):
# the example identity, its recipient, and an example stanza (test data, not code).
AGE_IDENTITY = "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
AGE_RECIPIENT = (
    "age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5aapdmwjjqpjfdyxnzr2zampc3ux"
    "y0dg4z2n2gm9su72p0pc3u0jvev55l694v78snxg3yzvcl7yda0eyytqj6a0ec477lnhcy5hzpz4zq3pxanve4cn62gqj3pjy5lqj9c6kyj4v2z8"
    "alktn8zh99970x79gjkv7522hv9kfz35zsnxhsx8wwtmu9cy3ftzjgwcp4sshn3llnylnpdsyz5jm72vefv4x5vfwytrefxg4wq3mv42wcrvkj7"
    "42479zrxzpvp2p3e9fed9f0739vcu80r7ma28qfhnvlv4gfzel9q654dj3zmuvvz893azhxdvs9fxd0r7jzchzcfcs5mkyyjxhw0n2z6dvp9yn9q"
    "fdp29h0azxqyjw6v7fhyuzj7zel0uq6j9rd7wgrpz7mf5dnj43jwsgvrc8qcnhy7tu6dkdujuxzkp9xj43xe8h92ktre2a3u3s8mm5mrp9nr9pwkg"
    "tz4mdlq9hgn4fps4k57ff6wddn2fy23t47sm20r8km8sd2pcyyafnet8f0dajsrlyjeah4n3mssr6aseevuuskdvq5lzguyvpgwpta742c6698vg"
    "utzqgny8usfg0w2he7kq5vyxjd0f9hqg8xk26y9e4th0gezq92q4cpp5p2y9hf5f2cje5l0c3sa3a2qxmm38pxxvhxh99yzmfz0zk7r2s64nnwjh"
    "kfgfr3gf8xnmppcgmaykvh5sh6g7vk9790rf8ws0axmr2t7z8aae5fq2029uvcn2ghgt4fu4wgwdc0k0cz52qkvwmuzj8p8k5jgf3xzk5zmrkavj"
    "ekjrpeq408xz3zxazwkc6tyfmhayrkfpjhwtz5mp8j8guqe43k2q6m2kte03vrw27y3wmqyu5etmt9dnkwcnnpmu9gz9dekfhdevf42ucshphnrk"
    "38ra6hx8w5f8q5ru0xdhrjxmwqf6cused7zc5xvq43r0zscjglpwlptpwydhqw64xz7ptjdyeyzpq2zkxtmzg29gzjpvzva4d3l0cenn9xs297wf4"
    "y4ukwrunf57xj6pm7nvrkwvtrt8hwcmgv8x7ajw7258ugf9wvkmk4052ekg87tw5vnx8nq2swyzv77v8yqlwsenvamr0zssknwts8rrhfuwj7yky"
    "snq9jxy0uv3kuyt22djszjdtvpz6d0s0kwh8ryynddzud92emeyvvyqktd0jtj7rvvg5gch25v8smlvny3kvn5gagyz475ze2y6q466xqmz2n3hs"
    "77lddeqyta2nch5k2u5yacuk9ywnwfdzvyejnucz724hj77hrrmakm7pr3kxsrxq22ejexlud9fy2kdqmkg5yncz7jm5wv2qjk5w5kvcpqsry2yq"
    "ffh2la52dxfjkjq5rzhjzeyn6dupn0qwtyv7s4lwg3xdarsdlwe2y3tujy480y7z39q259fzx6jhd2j0f5hagqpcpees7hzc2yrk5cy788uk3s7q"
    "vp5cpepx24gvws3m2g433exgwppnkjscec8qu4y9z9r7vccexjcjaen42245lmgmxmuavg9alej92322gvvyy2t6267v09ch64y0m53jff0vjj96s"
    "0ypk60hr3jw4myd6m5hpn3xjstx7tl2szhpr5qe8jj08ydjc4wy2rch2fhuy3pdfjax5awe9j99ly5hkntzz9fe5zatgjvzdd0kgtxs25njnajyf"
    "6ssekp7gelxquusn4pt25czh3scj68kq79wdn5tgm6yvm9nzavrg043x3msnygf8dweknw5jmqd0uvny6ttsn09508k0c55zfnegrm9efhxpfqdkm"
    "hh6gjtqmwze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k"
)
AGE_STANZA_ENC = (
    "U7E10Aon27j1oDrH7fP3B++SPROSnDVvQpBemzOM+ZcsojxJifUbeeYWejMYKNB+H3rlXNvgtDKfSCkt78oqncr3faY1JtMj0GQPBZ2g6t8o1cMz"
    "ZgyLMepeVuTQKxLqnM6L48n8dJL2y0N3i7WSOV6csB79r9tcIs88Al9iCwVLpt74OzDXAIwD1QlCAvj75ZEnwtgP6Xr6s+wHg9hLD0OSSQOaTdCq"
    "zR5shQWyrjVs7GCqd/5WbNGYNaolPQJBu9wTNhHjP9XGCTv8iKXkYwXDYujInkF5hOjpCHE8Vu+9UeMI+l0GJAEervT51bwaf288GiqgapP5g4HF"
    "8V4P0+03B/SwXhvxxZpKjTU2OcFS8I9chtEZ7Ucw5bvPkC1lyjNnqQXZyc4JnAqbFQTlPGnwbEsm0UGE+v0FOxTBznIivHoPHV++5PuYpombiV/l"
    "fYy8BFx0Hk1igNI3iLNjlIg4MLXNWjN3VROlXIiSsWNXjr/Frh/OE87PXoaKhsDPWfv6akd9PxSDqJMQ4j8k11kCSOnnU8Rw4TSVnTpt7gfYzBUL"
    "rMr7qDgyH/TYvp0o7mAq4IaraFJmTqm+LjfAJT4PCQOpnMNRHLyXZn6mtMUujNv7+zR/I9Vqi+bJdQBwNWdJcUQVarqx2zxV2rM7l+j0gsmxjxp5"
    "yAPyALzla7XzVvbboLMnHeM+CzN4GoB2PC4neVDSw7Dfs8vbm7f9CeDGvhjWrzcSCOsUCalvH1WkbpE0b9cE/TSJqwXFXEc8npTSQWH58RXDALNF"
    "3qCbW5LaboD4wCloClEakgljT0s0mTdqIwzj4xtdlX0S2dCtaV5MHQJiQHGwPvBSCiIsh8ZWJPwZ7Ron7xoWgNI0lXRqhKm7fvFNCzF+Ray2kOyK"
    "WHbsMy3a5Zx3yZxCGFwexAxgYfAH9HJ1raHi1XYGpNpBlDXg47U1y4uU7RBeBb4ewETv/B/p8sGW88tIY87dHM2xHjnntGXLvkCIkmjXGNULAVYH"
    "xDPJTygxSF7uTVPYCBUk5KeLnDVcgWF8p/wxigza47ptMtpVtm9ZrSEu9vzOnaTN3KO75RkkLuZszhXfmMZ46NQrdS7Y6duCiN501BnR5BUC4dX4"
    "iMxchix6aLN3pKv6UOEwwcx2aSF4Ib963MAtTPEjhqe+dt0VcTar/08uLWv1kQQueFaEGet4KQ975ZqaoU3PmZH9gqTOumX1EKf0Pnl0F3NMW+lE"
    "OlnCEce99zHBwBf7LV0pLNLDONBxpQySrZUQsNfhAq2Ktf5nG2hcGAMFMWIsEOuOyzEe+l2aHW4/ojOjU1Oqy4TLzVVRlWmPxQde7qKbvBN7CQhD"
    "qJHJA2nphQT/4DOdLqkwRiauMmnfx9FI3+hYnX25NpnyvM/Pt94vpsRkhcuttu4/G4xOYTNQd2YWjGwhypZ0oPSiriuTbhj6y2qm33jiwxvegeDz"
    "8CmAIhOEY2JoVpjjX9XzuNR2f5KTLmLzEkOcJQ"
)
AGE_STANZA_BODY = "c/k+TjhBA6Je1DF8rxZhe2Jm8CN0zbkV9rre6nA8g98"
AGE_INFO = b"age-encryption.org/mlkem768x25519"

VAULT_ID = bytes(range(32))


def _b64std(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


@pytest.fixture(scope="module")
def seed99() -> Secret:
    return Secret(b"\x99" * 32, "seed")


def test_b9_public_key_from_seed(kat: dict[str, Any], seed99: Secret) -> None:
    vec = kat["xwing_slot"]
    assert bytes.fromhex(vec["seed"]) == b"\x99" * 32
    pk = xwing.public_key(seed99)
    assert len(pk) == xwing.PK_LEN == 1216
    assert hashlib.sha256(pk).hexdigest() == vec["pk_sha256"]


def test_b9_wrapped_slot_opens_to_ksk(kat: dict[str, Any], seed99: Secret) -> None:
    vec = kat["xwing_slot"]
    raw = dict(vec["slot"])
    raw["pk"] = base64.urlsafe_b64encode(xwing.public_key(seed99)).rstrip(b"=").decode()
    slot = slot_from_json(raw)
    assert isinstance(slot, XwingSlot) and slot.kind == "recovery"
    assert hashlib.sha256(slot.wrapped).hexdigest() == vec["wrapped_sha256"]
    assert open_xwing(slot, VAULT_ID, seed99).reveal() == b"\x55" * 32
    # the context binds vault id, slot id, kind and pk: any other vault id fails
    with pytest.raises(IntegrityError):
        open_xwing(slot, bytes(32), seed99)


def test_b9_recipient_prefix(kat: dict[str, Any], seed99: Secret) -> None:
    prefix = kat["xwing_slot"]["recipient_age_compatible"].rstrip(".")
    assert xwing.recipient(xwing.public_key(seed99)).startswith(prefix)


def test_age_identity_gives_spec_recipient(kat: dict[str, Any]) -> None:
    seed = xwing.parse_identity(AGE_IDENTITY)
    assert seed.reveal().hex() == kat["age_interop"]["identity_seed"]
    pk = xwing.public_key(seed)
    assert hashlib.sha256(pk).hexdigest() == kat["age_interop"]["pk_sha256"]
    assert xwing.recipient(pk) == AGE_RECIPIENT
    assert xwing.parse_recipient(AGE_RECIPIENT) == pk
    assert xwing.identity(seed) == AGE_IDENTITY


def test_age_example_stanza_decrypts(kat: dict[str, Any]) -> None:
    enc, body = _b64std(AGE_STANZA_ENC), _b64std(AGE_STANZA_BODY)
    assert (len(enc), len(body)) == (xwing.ENC_LEN, 32)
    file_key = xwing.open(xwing.parse_identity(AGE_IDENTITY), AGE_INFO, enc + body)
    assert file_key.hex() == kat["age_interop"]["example_stanza_file_key"]


def test_seal_open_roundtrip_and_sizes() -> None:
    seed = xwing.generate()
    pk = xwing.public_key(seed)
    sealed = xwing.seal(pk, b"ctx", b"k" * 32)
    assert len(sealed) == xwing.sealed_len(32) == 1168
    assert xwing.open(seed, b"ctx", sealed) == b"k" * 32
    assert xwing.seal(pk, b"ctx", b"k" * 32) != sealed  # randomized encapsulation


@pytest.mark.parametrize("mutate", ["info", "seed", "enc", "ct", "tag", "short", "empty"])
def test_open_failures_are_integrity_errors(mutate: str) -> None:
    seed = xwing.generate()
    sealed = bytearray(xwing.seal(xwing.public_key(seed), b"ctx", b"k" * 32))
    info = b"ctx"
    if mutate == "info":
        info = b"other"
    elif mutate == "seed":
        seed = xwing.generate()
    elif mutate == "enc":
        sealed[5] ^= 1  # ML-KEM implicit rejection: a different shared secret, then a bad tag
    elif mutate == "ct":
        sealed[xwing.ENC_LEN] ^= 1
    elif mutate == "tag":
        sealed[-1] ^= 0x80
    elif mutate == "short":
        sealed = sealed[: xwing.ENC_LEN + 15]
    else:
        sealed = bytearray()
    with pytest.raises(IntegrityError):
        xwing.open(seed, info, bytes(sealed))


def test_bad_public_keys_rejected() -> None:
    with pytest.raises(IntegrityError):
        xwing.check_public_key(b"\x00" * 1215)
    with pytest.raises(IntegrityError):
        xwing.check_public_key(b"\xff" * 1216)  # ML-KEM coefficients out of range
    with pytest.raises(IntegrityError):
        xwing.seal(b"\x00" * 1217, b"", b"x")


def test_recipient_strings_strict() -> None:
    with pytest.raises(IntegrityError):
        xwing.parse_recipient(AGE_RECIPIENT[:-1] + ("q" if AGE_RECIPIENT[-1] != "q" else "p"))  # checksum
    with pytest.raises(IntegrityError):
        xwing.parse_recipient(bech32.encode("age1pq", b"\x00" * 1215))  # wrong length
    with pytest.raises(IntegrityError):
        xwing.parse_recipient(bech32.encode("age", xwing.parse_recipient(AGE_RECIPIENT)))  # wrong HRP
    with pytest.raises(IntegrityError):
        xwing.parse_identity(bech32.encode("AGE-SECRET-KEY-PQ-", b"\x01" * 31))


def test_context_binds_kind_and_pk() -> None:
    pk = xwing.public_key(xwing.generate())
    base = xwing_context(VAULT_ID, b"\x01" * 16, "device", pk)
    assert base != xwing_context(VAULT_ID, b"\x01" * 16, "recipient", pk)
    assert base.endswith(hashlib.sha256(pk).digest())


def test_seed_never_in_repr() -> None:
    seed = xwing.generate()
    assert seed.reveal().hex() not in repr(seed)
