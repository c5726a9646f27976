"""The web client's JavaScript modules, run in real headless Chromium against the static files
(served here by a tiny aiohttp server; no auction server): money in words, the bid request's
canonical bytes and Ed25519 signature (checked by `auction.protocol`), and receipt verification
against receipts made by `chain`, tampered ones failing at the right numbered step."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pages_kit import ACCESSIBLE_NAMES, STATIC, js, static_tab

from auction.protocol import BidRequest, signed_bytes, verify_bid_signature
from auction.web.pages import PAGES as SERVED
from auction.web.pages import render
from chain import (
    ChainError,
    Checkpoint,
    CosignatureSigner,
    Ed25519Signer,
    EntryType,
    JSONValue,
    MemoryTree,
    Policy,
    PolicyLog,
    Threshold,
    WitnessRule,
    add_cosignatures,
    build_entry,
    format_policy,
    make_receipt,
    sign_actor,
    sign_checkpoint,
    verify_receipt,
)

pytestmark = [pytest.mark.chromium]


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with static_tab() as tab:
        yield tab


# ------------------------------------------------------------------------------------------
# money.js


MONEY_CASES = [
    (210000000, "CNY", "two million one hundred thousand yuan", "贰佰壹拾万元整"),
    (100000100, "CNY", "one million one yuan", "壹佰万零壹元整"),
    (1000000100, "CNY", "ten million one yuan", "壹仟万零壹元整"),
    (100001050, "CNY", "one million ten yuan and fifty fen", "壹佰万零壹拾元伍角整"),
    (5, "CNY", "zero yuan and five fen", "伍分"),
    (10000000000, "CNY", "one hundred million yuan", "壹亿元整"),
    (1000500, "CNY", "ten thousand five yuan", "壹万零伍元整"),
    (1203, "CNY", "twelve yuan and three fen", "壹拾贰元零叁分"),
    (1000500000, "CNY", "ten million five thousand yuan", "壹仟万零伍仟元整"),
    (2100500000, "CNY", "twenty-one million five thousand yuan", "贰仟壹佰万零伍仟元整"),
    (10001000000, "CNY", "one hundred million ten thousand yuan", "壹亿零壹万元整"),
    (0, "CNY", "zero yuan", "零元整"),
    (123456, "USD", "one thousand two hundred thirty-four dollars and fifty-six cents", None),
    (101, "USD", "one dollar and one cent", None),
    (5000, "JPY", "five thousand yen", None),
]


async def test_money_words_and_formats(page: Any) -> None:
    results = await js(
        page,
        "money.js",
        """return arg.map(([minor, currency]) => [m.amountInWords(minor, currency),
             currency === 'CNY' ? m.chineseUppercase(minor) : null]);""",
        [[minor, currency] for minor, currency, _, _ in MONEY_CASES],
    )
    for (minor, _currency, english, chinese), (got_english, got_chinese) in zip(
        MONEY_CASES, results, strict=True
    ):
        assert got_english == english, minor
        assert got_chinese == chinese, minor

    formatted = await js(
        page,
        "money.js",
        """return [m.formatMoney(219000000, 'CNY', 'en-US'), m.formatMoney(125050, 'USD', 'en-US'),
                   m.formatMoney(5000, 'JPY', 'en-US'), m.parseAmount('2,190,000.5', 'CNY'),
                   m.parseAmount('1250', 'USD'), m.amountInputText(219000050, 'CNY'),
                   m.amountWordings(219000000, 'CNY')];""",
    )
    assert formatted == [
        "CN¥2,190,000.00",
        "$1,250.50",
        "¥5,000",
        219000050,
        125000,
        "2190000.50",
        ["two million one hundred ninety thousand yuan", "贰佰壹拾玖万元整"],
    ]
    refused = await js(
        page,
        "money.js",
        """const out = [];
           for (const [text, currency] of arg) {
             try { m.parseAmount(text, currency); out.push(null); }
             catch (e) { out.push(e.message); }
           }
           return out;""",
        [["12.345", "USD"], ["1e5", "USD"], ["-5", "CNY"], ["0", "CNY"], ["5.5", "JPY"]],
    )
    assert refused == [
        "USD amounts have at most 2 decimal places",
        "enter an amount in digits, for example 1250.00",
        "enter an amount in digits, for example 1250.00",
        "the amount must be more than zero",
        "JPY amounts have no decimal places",
    ]


# ------------------------------------------------------------------------------------------
# api.js


async def test_errors_come_back_in_words(page: Any) -> None:
    result = await js(
        page,
        "api.js",
        """const out = [];
           for (const [path, method] of [['/api/refused', 'POST'], ['/api/coded', 'POST'],
                                         ['/api/missing', 'GET']]) {
             try { await m.api(path, {method, body: method === 'POST' ? {} : undefined}); }
             catch (e) { out.push([e.name, e.status, e.code, e.words, m.errorWords(e)]); }
           }
           return out;""",
    )
    assert result == [
        [
            "ApiError",
            422,
            "BAD_CHECK_DIGIT",
            "The check character is wrong.",
            "The check character is wrong.",
        ],
        [
            "ApiError",
            402,
            "INSUFFICIENT_FUNDS",
            "The payment provider refused the deposit: insufficient funds.",
            "The payment provider refused the deposit: insufficient funds.",
        ],
        ["ApiError", 404, "HTTP_404", "Not found.", "Not found."],
    ]


# ------------------------------------------------------------------------------------------
# keys.js


async def test_bid_signature_matches_the_server(page: Any) -> None:
    payload: dict[str, Any] = {
        "account": "acct-5f1c2a9e0b7d4e11",
        "amount": 218000000,
        "currency": "CNY",
        "idempotency_key": "b-0c5d7f1a-é中",
        "kind": "bid",
        "lot": "hz-flat-1502",
    }
    result = await js(
        page,
        "keys.js",
        """const pair = await m.generateKeyPair();
           let extractable = true;
           try { await crypto.subtle.exportKey('pkcs8', pair.privateKey); }
           catch { extractable = false; }
           const request = {lot: arg.lot, kind: arg.kind, amount: arg.amount,
                            currency: arg.currency, idempotency_key: arg.idempotency_key};
           const message = await m.signBid(pair.privateKey, arg.account, request);
           // Stored in IndexedDB and read back, the key still signs.
           await m.saveIdentity({keyPair: pair, account: arg.account, session: 's'});
           const loaded = await m.loadIdentity();
           const again = await m.signBid(loaded.keyPair.privateKey, arg.account, request);
           return {bytes: Array.from(m.bidSignedBytes(arg)), message, again,
                   publicKey: await m.publicKeyBase64(loaded.keyPair),
                   extractable, privateExtractable: loaded.keyPair.privateKey.extractable};""",
        payload,
    )
    assert bytes(result["bytes"]) == signed_bytes(payload)
    assert result["extractable"] is False and result["privateExtractable"] is False
    public_key = base64.b64decode(result["publicKey"])
    for message in (result["message"], result["again"]):
        assert message["type"] == "bid"
        request = BidRequest(
            lot=message["lot"],
            kind=message["kind"],
            amount=message["amount"],
            currency=message["currency"],
            idempotency_key=message["idempotency_key"],
            signature=base64.b64decode(message["sig"]),
        )
        assert verify_bid_signature(request, payload["account"], public_key)
        # The same signature does not cover another account or another amount.
        assert not verify_bid_signature(request, "acct-0000000000000000", public_key)
        other = BidRequest(
            request.lot,
            request.kind,
            request.amount + 1,
            request.currency,
            request.idempotency_key,
            request.signature,
        )
        assert not verify_bid_signature(other, payload["account"], public_key)


async def test_canonical_json_refuses_what_cannot_be_signed(page: Any) -> None:
    result = await js(
        page,
        "keys.js",
        """const out = [m.canonicalJson({b: [1, 'x', null, true], a: {d: 1, c: 'é'}})];
           for (const bad of [1.5, 2 ** 60]) {
             try { m.canonicalJson({amount: bad}); out.push('accepted'); }
             catch (e) { out.push(e.message); }
           }
           return out;""",
    )
    assert result == [
        '{"a":{"c":"é","d":1},"b":[1,"x",null,true]}',
        "only safe integers can be signed",
        "only safe integers can be signed",
    ]


# ------------------------------------------------------------------------------------------
# receipt.js

ORIGIN = "gavel.test/ledger"
TIME_US = 1_795_000_000_000_000


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"gavel web test " + label.encode()).digest()


LOG = Ed25519Signer.from_seed(ORIGIN, _seed("log"))
NOTARIES = [CosignatureSigner.from_seed(f"n{i}.gavel.test", _seed(f"n{i}")) for i in (1, 2, 3)]
OTHER_NOTARY = CosignatureSigner.from_seed("n2.gavel.test", _seed("impostor"))


def _policy(k: int = 2) -> bytes:
    witnesses = tuple(WitnessRule(f"notary{i}", n.verifier) for i, n in enumerate(NOTARIES, 1))
    quorum = Threshold("notaries", k, witnesses)
    return format_policy(Policy((PolicyLog(LOG.verifier),), witnesses, quorum, (quorum,)))


def _ledger(count: int) -> tuple[list[bytes], MemoryTree]:
    key = Ed25519PrivateKey.from_private_bytes(_seed("house"))
    entries: list[bytes] = []
    tree = MemoryTree()
    prev = b""
    for seq in range(count):
        body: dict[str, JSONValue] = {"lot": "L-1", "amount": 100_000 + seq * 500}
        entry = build_entry(
            seq=seq,
            prev=prev,
            time_us=TIME_US + seq,
            entry_type=EntryType.BID,
            body=body,
            actor=sign_actor(EntryType.BID, body, "house", key),
        )
        data = entry.to_bytes()
        entries.append(data)
        tree.append(data)
        prev = entry.leaf_hash()
    return entries, tree


ENTRIES, TREE = _ledger(13)


def _checkpoint(cosigners: list[CosignatureSigner], signer: Ed25519Signer = LOG) -> bytes:
    checkpoint = Checkpoint(ORIGIN, TREE.size, TREE.root())
    signed = sign_checkpoint(checkpoint, signer)
    lines = [c.cosign(checkpoint.text_bytes(), 1_795_000_000 + i) for i, c in enumerate(cosigners)]
    return add_cosignatures(signed, lines)


def _receipt(index: int, checkpoint: bytes) -> bytes:
    return make_receipt(index, TREE.inclusion_proof(index), checkpoint)


def _flip_proof_byte(receipt: bytes) -> bytes:
    lines = receipt.split(b"\n")
    raw = bytearray(base64.b64decode(lines[2]))
    raw[5] ^= 0x01
    lines[2] = base64.b64encode(bytes(raw))
    return b"\n".join(lines)


def _break_cosignature(receipt: bytes) -> bytes:
    lines = receipt.split(b"\n")
    position = next(i for i, line in enumerate(lines) if line.startswith("— n2".encode()))
    name, encoded = lines[position].rsplit(b" ", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-3] ^= 0x40
    lines[position] = name + b" " + base64.b64encode(bytes(raw))
    return b"\n".join(lines)


GOOD_2_OF_3 = _checkpoint(NOTARIES[:2])


def _cases() -> list[tuple[str, bytes, bytes, bytes, int | None]]:
    """(name, receipt, entry, policy, failing step or None)."""
    policy = _policy()
    good = _receipt(9, GOOD_2_OF_3)
    return [
        ("valid", good, ENTRIES[9], policy, None),
        ("valid all three", _receipt(12, _checkpoint(NOTARIES)), ENTRIES[12], policy, None),
        ("valid first leaf", _receipt(0, GOOD_2_OF_3), ENTRIES[0], policy, None),
        ("flipped proof byte", _flip_proof_byte(good), ENTRIES[9], policy, 6),
        ("wrong cosignature", _break_cosignature(good), ENTRIES[9], policy, 4),
        ("below quorum", _receipt(9, _checkpoint(NOTARIES[:1])), ENTRIES[9], policy, 5),
        (
            "impostor notary",
            _receipt(9, _checkpoint([NOTARIES[0], OTHER_NOTARY])),
            ENTRIES[9],
            policy,
            5,
        ),
        ("quorum of three", good, ENTRIES[9], _policy(3), 5),
        ("other entry", good, ENTRIES[8], policy, 2),
        ("not a receipt", b"hello\n\nworld", ENTRIES[9], policy, 1),
        (
            "foreign log",
            _receipt(
                9, _checkpoint(NOTARIES[:2], Ed25519Signer.from_seed(ORIGIN, _seed("another log")))
            ),
            ENTRIES[9],
            policy,
            4,
        ),
        (
            "truncated proof",
            b"\n".join(line for i, line in enumerate(good.split(b"\n")) if i != 3),
            ENTRIES[9],
            policy,
            6,
        ),
    ]


async def test_receipts_verify_and_tampering_fails_at_the_right_step(page: Any) -> None:
    cases = _cases()
    # The Python library agrees on every case, step for step.
    from chain import parse_policy

    for name, receipt, entry, policy, step in cases:
        if step is None:
            verify_receipt(receipt, entry, None, parse_policy(policy))
            continue
        with pytest.raises(ChainError) as raised:
            verify_receipt(receipt, entry, None, parse_policy(policy))
        assert str(raised.value.step).startswith(f"{step} "), (name, raised.value.step)

    results = await js(
        page,
        "receipt.js",
        """const out = [];
           for (const [receipt, entry, policy] of arg) {
             const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             try {
               const result = await m.verifyReceipt(bytes(receipt), bytes(entry), policy);
               out.push({ok: true, text: m.describeResult(result), notaries: result.notaries});
             } catch (e) {
               out.push({ok: false, step: e.step, text: m.describeResult(e)});
             }
           }
           return out;""",
        [
            [base64.b64encode(receipt).decode(), base64.b64encode(entry).decode(), policy.decode()]
            for _, receipt, entry, policy, _ in cases
        ],
    )
    for (name, _, _, _, step), result in zip(cases, results, strict=True):
        if step is None:
            assert result["ok"], (name, result)
            assert result["text"].startswith("Verified: entry "), result
        else:
            assert not result["ok"] and result["step"] == step, (name, result)
            assert result["text"].startswith(f"Verification failed at step {step} ("), result
    assert results[0]["notaries"] == ["notary1", "notary2"]
    assert "notary notary2" in results[4]["text"] and "does not verify" in results[4]["text"]
    assert "1 of 3 notaries in group notaries co-signed, 2 required" in results[5]["text"]


async def test_served_receipt_shape_verifies(page: Any) -> None:
    """The JSON of GET /log/receipt/{seq} verifies as it is."""
    body = {
        "seq": 4,
        "size": TREE.size,
        "entry": base64.b64encode(ENTRIES[4]).decode(),
        "proof": _receipt(4, GOOD_2_OF_3).decode(),
    }
    result = await js(
        page,
        "receipt.js",
        """const result = await m.verifyServedReceipt(arg.body, arg.policy);
           let broken;
           try { await m.verifyServedReceipt({...arg.body, entry: '%%%'}, arg.policy); }
           catch (e) { broken = [e.step, e.message]; }
           return [result.index, result.size, broken];""",
        {"body": body, "policy": _policy().decode()},
    )
    assert result[:2] == [4, 13]
    assert result[2][0] == 1 and "not base64" in result[2][1]


# ------------------------------------------------------------------------------------------
# ws.js: the protocol client against a websocket peer that follows docs/protocol.md §2 and
# drops the first connection with a bid still unanswered.


async def test_socket_resubscribes_and_resends_unacknowledged_bids(page: Any) -> None:
    received: list[list[dict[str, Any]]] = []

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        frames: list[dict[str, Any]] = []
        received.append(frames)
        first = len(received) == 1
        async for message in socket:
            frame = message.json()
            frames.append(frame)
            if frame["type"] == "hello":
                await socket.send_json(
                    {
                        "type": "welcome",
                        "v": 1,
                        "server_time_us": 1_795_000_000_000_000,
                        "account": "acct-0000000000000001",
                        "heartbeat_s": 15,
                    }
                )
            elif frame["type"] == "time":
                await socket.send_json(
                    {"type": "time", "t0": frame["t0"], "server_time_us": 1_795_000_000_000_000}
                )
            elif frame["type"] == "subscribe":
                seq = 5 if first else 7
                await socket.send_json(
                    {
                        "type": "snapshot",
                        "lot": frame["lot"],
                        "seq": seq,
                        "view": {"lot_id": frame["lot"], "seq": seq},
                        "replayed": not first,
                    }
                )
            elif frame["type"] == "bid" and first:
                await socket.close()  # the connection is lost before the ack
            elif frame["type"] == "bid":
                await socket.send_json(
                    {
                        "type": "ack",
                        "idempotency_key": frame["idempotency_key"],
                        "result": "accepted",
                        "seq": 8,
                        "entry": 41,
                    }
                )
        return socket

    app = web.Application()
    app.router.add_get("/ws", websocket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"ws://127.0.0.1:{runner.addresses[0][1]}/ws"
    try:
        result = await js(
            page,
            "ws.js",
            """const messages = [];
               const states = [];
               let socket;
               const acked = new Promise((resolve) => {
                 socket = new m.GavelSocket({url: arg, session: 'token-1',
                   onStatus: (s) => states.push(s),
                   onMessage(message) {
                     messages.push(message);
                     if (message.type === 'snapshot') {
                       socket.applied(message.lot, message.seq);
                       if (message.seq === 5) socket.bid({type: 'bid', lot: 'L-1', kind: 'bid',
                         amount: 100, currency: 'USD', idempotency_key: 'b-1', sig: 'AA=='});
                     }
                     if (message.type === 'ack') resolve();
                   }});
               });
               socket.subscribe('L-1');
               socket.connect();
               await acked;
               const pending = socket.pending.size;
               socket.close();
               return {types: messages.map((x) => x.type), pending, states,
                       samples: socket.clock.samples, account: socket.account};""",
            url,
        )
    finally:
        await runner.cleanup()
    assert result["types"] == ["welcome", "snapshot", "welcome", "snapshot", "ack"]
    assert result["pending"] == 0 and result["account"] == "acct-0000000000000001"
    assert "reconnecting" in result["states"] and result["samples"] >= 1
    first, second = received[0], received[1]
    assert first[0] == {"type": "hello", "v": 1, "session": "token-1"}
    assert {"type": "subscribe", "lot": "L-1", "since_seq": 0} in first
    assert second[0] == {"type": "hello", "v": 1, "session": "token-1"}
    # Resubscribed from the last applied seq, and the same bid resent with its original key.
    assert {"type": "subscribe", "lot": "L-1", "since_seq": 5} in second
    bids = [frame for frame in second if frame["type"] == "bid"]
    assert [bid["idempotency_key"] for bid in bids] == ["b-1"]
    assert bids[0] == next(frame for frame in first if frame["type"] == "bid")


async def test_server_clock_keeps_the_lowest_round_trip(page: Any) -> None:
    result = await js(
        page,
        "ws.js",
        """const clock = new m.ServerClock();
           clock.observe(1000, 1100, 5050);   // rtt 100: offset 4000
           clock.observe(2000, 2010, 8005);   // rtt 10: offset 6000 (kept)
           clock.observe(3000, 3300, 99999);  // rtt 300: ignored
           return [clock.offsetMs, clock.rttMs, clock.samples];""",
    )
    assert result == [6000, 10, 3]


# ------------------------------------------------------------------------------------------
# The pages themselves: lang, no inline script or handler, accessible names, phone width,
# errors in words when the server cannot answer.


class _PageAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if tag == "script" and not attributes.get("src"):
            self.problems.append("inline script")
        if tag == "script" and attributes.get("type") != "module":
            self.problems.append("script is not a module")
        for name, _ in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name} on <{tag}>")
        if tag in ("a", "link", "script") and any(
            (attributes.get(key) or "").startswith(("http:", "https:", "//"))
            for key in ("href", "src")
        ):
            self.problems.append(f"external resource on <{tag}>")


@pytest.mark.parametrize("path", list(SERVED))
def test_page_markup_rules(path: str) -> None:
    """Each page whole as the server sends it: the one head and site header, then its body."""
    page = SERVED[path]
    audit = _PageAudit()
    audit.feed(render(path, page, (STATIC / page.body).read_text(encoding="utf-8")))
    assert audit.lang == "en"
    assert audit.problems == []


async def test_pages_at_phone_width_without_a_server(page: Any) -> None:
    """Against a server that has no API, every page loads without a script error, shows the
    failure in words, has accessible names for every control and no horizontal scrolling."""
    base = page.url.rstrip("/")
    await page.set_viewport_size({"width": 360, "height": 740})
    for name, expected in [
        ("index.html", "The catalogue could not be loaded: Not found."),
        ("lot.html?lot=L-1", "There is no such lot."),
        ("register.html", "The lots could not be loaded: Not found."),
        ("console.html", "This console needs the auctioneer link"),
        ("auditor.html", "The policy could not be loaded: Not found."),
        ("dashboard.html", "This dashboard needs a staff link"),
        ("staff.html", "This page needs an admin link"),
    ]:
        await page.goto(f"{base}/static/{name}")
        status = page.locator("#status")
        await status.wait_for(state="visible", timeout=10_000)
        assert (await status.text_content() or "").startswith(expected), name
        assert await page.evaluate(ACCESSIBLE_NAMES) == [], name
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (name, width)
    await page.goto(f"{base}/static/lot.html?lot=L-1")
    bid = page.get_by_role("button", name=re.compile(r"^Bid"))
    assert await bid.count() == 1
