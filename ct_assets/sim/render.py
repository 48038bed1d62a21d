"""Turning templates into ticket text: channel style, paraphrase, typos (simulator only)."""

from __future__ import annotations

import re
import string

import numpy as np

from ct_assets.sim.vocabulary import (
    NEW_PLANS,
    NEW_PRODUCTS,
    OLD_PLANS,
    OLD_PRODUCTS,
    SLANG_EMOJI,
    SLOTS,
)

# Style: how each channel wraps the body. Greetings/closings are old-world wording.
GREETINGS = {
    "email": ("Dear Acme support,\n\n", "Hello,\n\n", "Hi team,\n\n", "To whom it may concern,\n\n"),
    "chat": ("hi, ", "hey ", "hello, ", "Hi there, "),
    "web": ("Hello, ", "Hi, ", "Good morning, "),
}
CLOSINGS = {
    "email": ("\n\nBest regards,\n{name}", "\n\nThanks,\n{name}", "\n\nKind regards,\n{name}",
              "\n\nSent from my AcmePhone"),
    "chat": (" thx", " pls help", " ??", " thanks"),
    "web": (" Thanks!", " Thank you.", " Please help.", " This is urgent.", " Thanks in advance."),
}
CONTACT = (" You can reach me at {email}.", " Call me on {phone}.")
GREETING_P = {"email": 0.8, "chat": 0.3, "web": 0.25}
CLOSING_P = {"email": 0.7, "chat": 0.2, "web": 0.3}
LOWERCASE_P = {"email": 0.05, "chat": 0.6, "web": 0.15}
CONTACT_P = 0.05
CURLY_APOSTROPHE_P = 0.15  # phone keyboards type ’ instead of '

# Paraphrases applied to template words (never to product names or other slots).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "can't": ("cannot", "cant", "can not"),
    "please": ("pls", "plz", "kindly"),
    "Please": ("Pls", "Kindly"),
    "doesn't": ("does not", "doesnt"),
    "I'm": ("im", "I am"),
    "won't": ("will not", "wont"),
    "received": ("recieved",),
    "want": ("would like", "need"),
    "package": ("parcel", "box"),
    "charged": ("billed",),
    "still": ("STILL",),
}
PARAPHRASE_P = 0.3

_FORMATTER = string.Formatter()
_SYNONYM_RE = {w: re.compile(rf"(?<![\w']){re.escape(w)}(?![\w'])") for w in SYNONYMS}


def pick(rng: np.random.Generator, seq: tuple[str, ...] | list[str]) -> str:
    return seq[int(rng.integers(len(seq)))]


def typos(rng: np.random.Generator, text: str, rate: float) -> str:
    """Swap, drop or double letters at ``rate`` per letter (fat fingers, not encoding)."""
    if rate <= 0 or not text:
        return text
    hits = np.flatnonzero(rng.random(len(text)) < rate)
    if hits.size == 0:
        return text
    chars = list(text)
    for pos, op in zip(hits[::-1].tolist(), rng.integers(3, size=hits.size).tolist()):
        if not chars[pos].isalpha():
            continue
        if op == 0 and pos + 1 < len(chars) and chars[pos + 1].isalpha():
            chars[pos], chars[pos + 1] = chars[pos + 1], chars[pos]
        elif op == 1:
            del chars[pos]
        else:
            chars.insert(pos, chars[pos])
    return "".join(chars)


def paraphrase(rng: np.random.Generator, text: str) -> str:
    for word, pattern in _SYNONYM_RE.items():
        if pattern.search(text) and rng.random() < PARAPHRASE_P:
            text = pattern.sub(pick(rng, SYNONYMS[word]), text)
    return text


def render(
    rng: np.random.Generator,
    template: str,
    *,
    launch_p: float = 0.0,
    typo_rate: float = 0.0,
    lowercase: bool = False,
    extra: dict[str, str] | None = None,
) -> tuple[str, bool]:
    """Fill a template. Returns (text, whether a launch product/plan was used).

    Literal words get paraphrases, typos and lowercasing; slot values (product names,
    order ids, names) are inserted verbatim so tests can find them exactly.
    """
    out: list[str] = []
    used_launch = False
    for literal, field, _, _ in _FORMATTER.parse(template):
        literal = typos(rng, paraphrase(rng, literal), typo_rate)
        out.append(literal.lower() if lowercase else literal)
        if field is None:
            continue
        if field in ("product", "plan"):
            new = launch_p > 0 and rng.random() < launch_p
            used_launch |= bool(new)
            pool = (NEW_PRODUCTS if field == "product" else NEW_PLANS) if new else (
                OLD_PRODUCTS if field == "product" else OLD_PLANS)
            out.append(pick(rng, pool))
        elif field == "order":
            out.append(pick(rng, ("#", "ACM-", "", "#A")) + str(int(rng.integers(1_000_000, 10_000_000))))
        elif extra and field in extra:
            out.append(extra[field])
        else:
            out.append(pick(rng, SLOTS[field]))
    return "".join(out), used_launch


def compose(rng: np.random.Generator, body: str, channel: str, *, slang: bool) -> str:
    """Wrap a body template in the channel's greeting/closing (still a template)."""
    if slang:
        return body + pick(rng, SLANG_EMOJI)
    greeting = pick(rng, GREETINGS[channel]) if rng.random() < GREETING_P[channel] else ""
    closing = pick(rng, CLOSINGS[channel]) if rng.random() < CLOSING_P[channel] else ""
    contact = pick(rng, CONTACT) if rng.random() < CONTACT_P else ""
    if greeting.endswith(" ") and body[:1].isalpha() and not body.startswith(("I ", "I'")):
        body = body[0].lower() + body[1:]  # "Hi, my order..." rather than "Hi, My order..."
    return greeting + body + contact + closing
