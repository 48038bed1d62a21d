"""Text normalisation tests.

They exist because every model input passes through `normalize_text`: a regression here
silently changes what the model sees (tokens, lengths) or, worse, leaks contact details
into training data and reports. The phone rule is a judgement call (see the module
docstring of ct_assets.ingest.preprocess); these cases pin it down.
"""

from __future__ import annotations

import unicodedata

import polars as pl
import pytest

from ct_assets.ingest.preprocess import (
    EMAIL_TOKEN,
    PHONE_TOKEN,
    normalize_series,
    normalize_text,
)


def norm(text: str | None, *, max_chars: int = 1000, emails: bool = True, phones: bool = True) -> str | None:
    series = pl.Series("t", [text], dtype=pl.Utf8)
    return normalize_series(series, max_chars=max_chars, mask_emails=emails, mask_phones=phones)[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # decomposed e + U+0301 becomes precomposed é (NFC)
        ("cafe\u0301", "caf\u00e9"),
        # NUL, BEL, ESC are dropped, not turned into spaces
        ("a\x00b\x07c\x1b", "abc"),
        # C1 control (U+0085 NEL is whitespace -> space; U+009B CSI is removed)
        ("a\u0085b\u009bc", "a bc"),
        # tab, newline, CRLF become single spaces
        ("a\tb\nc\r\nd", "a b c d"),
        # runs of whitespace incl. NBSP and U+2028 collapse; ends stripped
        ("  a \u00a0  b\u2028c  ", "a b c"),
        # only control characters / whitespace -> empty string (quality rule: empty_text)
        ("\x01\x02 \t\n", ""),
        # null stays null (quality rule: missing_text)
        (None, None),
        # ordinary text is untouched
        ("Great phone, 5 stars!", "Great phone, 5 stars!"),
        # format characters only (zero-width, bidi, BOM) -> empty (quality rule: empty_text)
        ("\u200b\u200e\ufeff\u2066 \u200d", ""),
        # zero-width and bidi characters at the ends are stripped like spaces
        ("\u200b\u200f hello \u200d\u2069", "hello"),
        # a BOM inside the text (two files concatenated) is dropped
        ("a\ufeffb", "ab"),
        # ZWJ inside an emoji sequence stays, so the family stays one glyph
        ("hi 👨\u200d👩\u200d👧", "hi 👨\u200d👩\u200d👧"),
        # ZWNJ inside a Persian word is spelling and stays
        ("می\u200cخواهم", "می\u200cخواهم"),
        # tag characters ending a subdivision flag stay at the end of the text
        ("🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
         "🏴\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f"),
    ],
)
def test_normalisation(text, expected):
    assert norm(text) == expected


def test_nfc_output_is_nfc_and_shorter():
    out = norm("e\u0301te\u0301")
    assert out == unicodedata.normalize("NFC", "e\u0301te\u0301")
    assert len(out) == 3  # three code points, not five


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain email
        ("mail me at john.doe@example.com", f"mail me at {EMAIL_TOKEN}"),
        # plus-addressing and multi-level domain
        ("x john.doe+tag@mail.example.co.uk.", f"x {EMAIL_TOKEN}."),
        # international with dashes (brief example)
        ("call +1 555-123-4567 now", f"call {PHONE_TOKEN} now"),
        # parenthesised area code with spaces (brief example)
        ("call (555) 123 4567.", f"call {PHONE_TOKEN}."),
        # area-exchange-line with dots / dashes
        ("555.123.4567 or 555-123-4567", f"{PHONE_TOKEN} or {PHONE_TOKEN}"),
        # bare 10-digit run and E.164 without separators
        ("5551234567 / +15551234567", f"{PHONE_TOKEN} / {PHONE_TOKEN}"),
        # European grouping
        ("ring +44 20 7946 0958", f"ring {PHONE_TOKEN}"),
        # after a colon ("tel:")
        ("tel:+1-555-123-4567", f"tel:{PHONE_TOKEN}"),
        # both kinds in one text
        ("a@b.io, 555-123-4567", f"{EMAIL_TOKEN}, {PHONE_TOKEN}"),
        # not masked: order id with '#', even when long
        ("order #123456 arrived", "order #123456 arrived"),
        ("order #1234567890 arrived", "order #1234567890 arrived"),
        # not masked: model names and SKUs glued to letters
        ("the X2 and SM-G991B", "the X2 and SM-G991B"),
        ("call555-123-4567", "call555-123-4567"),
        # not masked: dates, IPs, ranges, short numbers, local numbers without area code
        ("on 2024-01-15 from 192.168.1.1", "on 2024-01-15 from 192.168.1.1"),
        ("costs 1000-2000, item 12345", "costs 1000-2000, item 12345"),
        ("555-1234", "555-1234"),
        # not masked: 9 digits bare is too short for the bare-run rule
        ("id 123456789", "id 123456789"),
        # not an email: no domain
        ("me@ home", "me@ home"),
    ],
)
def test_masking(text, expected):
    assert norm(text) == expected


def test_masking_can_be_switched_off():
    text = "john@example.com +1 555-123-4567"
    assert norm(text, emails=False, phones=False) == text
    assert norm(text, emails=True, phones=False) == f"{EMAIL_TOKEN} +1 555-123-4567"
    assert norm(text, emails=False, phones=True) == f"john@example.com {PHONE_TOKEN}"


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        # cut at max_chars characters, then strip the trailing space
        ("hello world", 6, "hello"),
        # characters, not bytes: 3 accented characters are 6 UTF-8 bytes
        ("\u00e9\u00e9\u00e9\u00e9", 3, "\u00e9\u00e9\u00e9"),
        # masking happens before truncation: no half-email survives the cut
        ("john.doe@example.com is me", 5, "<EMAI"),
        # shorter text untouched
        ("hi", 10, "hi"),
        # a cut right after a ZWJ leaves no dangling joiner at the end
        ("ab\u200dcd", 3, "ab"),
    ],
)
def test_truncation(text, max_chars, expected):
    assert norm(text, max_chars=max_chars) == expected


def test_expr_form_and_bad_limit():
    frame = pl.DataFrame({"t": ["  a  b  "]})
    assert frame.select(normalize_text(pl.col("t"), max_chars=10)).item() == "a b"
    with pytest.raises(ValueError, match="max_chars"):
        normalize_text(pl.col("t"), max_chars=0)
