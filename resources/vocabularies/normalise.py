"""The key a free-text value is matched by: "Information-Technology", "information technology" and
"INFORMATION  TECHNOLOGY" are one value; "U.S." is "us"; "Deutschland" and "Deütschland" are one.

Case folded, compatibility-decomposed with the accents dropped, "&" read as "and", and only letters
and digits kept. Only a lookup's first sight of a value pays for it (lookup.py remembers the answer).
"""

from __future__ import annotations

import unicodedata


def _once(text: str) -> str:
    # NFKD before and after casefold: each can produce what the other changes (a black-letter H folds to itself
    # but decomposes to a capital H; some folded letters decompose).
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(ch for ch in folded.replace("&", "and") if ch.isalnum())


def normalise(text: str) -> str:
    """The matching key of `text` ("" when it holds no letter or digit). Never raises; idempotent."""
    key = _once(text)
    # A second pass changes the key only for rare compositions; repeating to the fixed point makes
    # normalise(normalise(x)) == normalise(x) hold by construction.
    for _ in range(8):
        again = _once(key)
        if again == key:
            break
        key = again
    return key
