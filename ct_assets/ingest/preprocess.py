"""Text normalisation for the clean frame, as vectorised polars expressions.

Order matters and is fixed:
1. Unicode NFC, so "e" + combining acute and precomposed "é" are one token downstream.
2. Tab/newline/CR (and any other whitespace) become spaces; other control characters
   (C0/C1, e.g. NUL, BEL, ESC) are dropped: they carry no meaning and break tokenisers.
3. Whitespace runs collapse to one space, then strip; invisible format characters (Unicode
   Cf: zero-width space/joiners, bidi controls, BOM) are stripped at the ends too, and a
   BOM (U+FEFF) is dropped everywhere. Inside the text other Cf characters stay: a ZWJ
   joins emoji sequences (👩‍💻) and a ZWNJ is spelling in Persian. A text left with no
   visible character is quarantined as ``empty_text`` (ct_assets.ingest.quality).
4. Masking (emails, then phones) happens *before* truncation, so truncation can never
   cut a contact detail in half and leave an unmasked fragment behind.
5. Truncate to ``max_chars`` characters (not bytes), then strip again.

Phone rule (deliberately conservative about what it leaves alone):
a phone number is one of
  - international: ``+`` country code, then digits in groups (``+1 555-123-4567``,
    ``+44 20 7946 0958``, ``+15551234567``);
  - parenthesised area code: ``(555) 123 4567``, ``(030)1234-5678``;
  - three groups separated by space, ``-`` or ``.``: ``555-123-4567``, ``555.123.4567``;
  - a bare run of 10 to 15 digits: ``5551234567``.
It must not be glued to a letter, digit or ``#`` on the left, nor to a letter or digit on
the right. So order ids (``#12345``, ``order #1234567890``), model names (``X2``,
``SM-G991B``), dates (``2024-01-15``), IPs, prices and short numbers stay untouched.
Local numbers without an area code (``555-1234``) are *not* masked: that shape is
indistinguishable from ranges such as ``1000-2000``.
"""

from __future__ import annotations

import polars as pl

EMAIL_TOKEN = "<EMAIL>"
PHONE_TOKEN = "<PHONE>"

# Whitespace including the Unicode separators (NBSP, U+2028, ...): `\s` is Unicode-aware
# in polars' Rust regex engine. Written as "a run of 2+, or one that is not a space" so a
# lone space (most matches of a plain `\s+`) is not rewritten: the same output as `\s+` ->
# " " (a maximal run of 2+ is matched whole, from its first character, by the first
# branch), ~3x faster at 200k rows.
_WHITESPACE = r"\s\s+|[^ \S]"
# A text with no character at or above U+0300 (the first combining mark) is already NFC:
# checked with unicodedata, every code point below it is NFC-stable and none is the second
# part of a canonical composition. Most texts are such (94% of the simulator's), so only
# the others pay for the normalisation (~0.35 s of ~0.8 s at 200k rows).
_MAY_NEED_NFC = r"[^\x00-\x{2FF}]"
# Control characters that are not whitespace. \s already covers \t \n \r \v \f and U+0085,
# which step 2 turns into spaces, so only the rest is removed.
_CONTROL = r"[\p{Cc}&&[^\s]]"
# A BOM inside a text is a leftover of concatenated files, never content (U+2060 is the
# word joiner); it is dropped with the control characters.
_BOM = "\ufeff"
# Whitespace and format characters at either end, except the tag characters (U+E0020 to
# U+E007F), which end a subdivision flag such as 🏴󠁧󠁢󠁳󠁣󠁴󠁿 and may be the text's last characters.
_INVISIBLE_ENDS = r"^[\s\p{Cf}--[\x{E0020}-\x{E007F}]]+|[\s\p{Cf}--[\x{E0020}-\x{E007F}]]+$"

_EMAIL = r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}"

_SEP = r"[ .-]"
_PHONE_BODY = "|".join(
    [
        # +CC, optional (area) or area, then subscriber digits; separators optional.
        rf"\+\d{{1,3}}{_SEP}?(?:\(\d{{1,4}}\){_SEP}?|\d{{1,4}}{_SEP}?)?\d{{3,4}}{_SEP}?\d{{4}}",
        # (area) subscriber
        rf"\(\d{{2,4}}\){_SEP}?\d{{3,4}}{_SEP}?\d{{4}}",
        # area-exchange-line with mandatory separators
        rf"\d{{2,4}}{_SEP}\d{{3,4}}{_SEP}\d{{4}}",
        # bare digit run
        r"\d{10,15}",
    ]
)
# Rust regex has no look-behind: the left boundary is captured as group 1 and written
# back. The right boundary is a zero-width \b, so two phones separated by a single space
# are both masked (nothing between them is consumed twice).
_PHONE = rf"(^|[^\w#])(?:{_PHONE_BODY})\b"


def normalize_text(
    expr: pl.Expr,
    *,
    max_chars: int,
    mask_emails: bool = True,
    mask_phones: bool = True,
) -> pl.Expr:
    """Return ``expr`` normalised as described in the module docstring; nulls stay null."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    out = (
        expr.map_batches(_nfc, return_dtype=pl.String, is_elementwise=True)
        .str.replace_all(_CONTROL, "")
        .str.replace_all(_BOM, "", literal=True)
        .str.replace_all(_WHITESPACE, " ")
        .str.replace_all(_INVISIBLE_ENDS, "")
    )
    if mask_emails:
        out = out.str.replace_all(_EMAIL, EMAIL_TOKEN)
    if mask_phones:
        out = out.str.replace_all(_PHONE, "${1}" + PHONE_TOKEN)
    # Truncation can leave a joiner or a space at the new end: strip the ends again.
    return out.str.slice(0, max_chars).str.replace_all(_INVISIBLE_ENDS, "")


def _nfc(texts: pl.Series) -> pl.Series:
    """``texts.str.normalize("NFC")``, computed only on the texts that may change."""
    needs = texts.str.contains(_MAY_NEED_NFC).fill_null(False)
    if not needs.any():
        return texts
    return texts.scatter(needs.arg_true(), texts.filter(needs).str.normalize("NFC"))


def normalize_series(
    texts: pl.Series,
    *,
    max_chars: int,
    mask_emails: bool = True,
    mask_phones: bool = True,
) -> pl.Series:
    """Series convenience wrapper over :func:`normalize_text` (keeps the series name)."""
    frame = texts.to_frame("t").select(
        normalize_text(pl.col("t"), max_chars=max_chars, mask_emails=mask_emails, mask_phones=mask_phones)
    )
    return frame.to_series().rename(texts.name)
