"""Short names beside the challenge's 27 product type codes.

Rakuten publishes codes only. These names are derived, as the seed did with its word clouds, from
each class's most telling words: the designation words of highest mean TF-IDF over the shared data
(`python experiments/class_words.py` prints them beside each name), worded like the names commonly
used for this challenge. A code missing here (a new export) shows as its number alone.
"""

from __future__ import annotations

CLASS_NAMES: dict[int, str] = {
    10: "old books",
    40: "imported video games",
    50: "video game accessories",
    60: "game consoles",
    1140: "figurines, pop culture",
    1160: "trading cards",
    1180: "wargames, miniatures",
    1280: "children's toys",
    1281: "board games",
    1300: "model making, drones",
    1301: "baby socks, small games",
    1302: "outdoor games",
    1320: "childcare",
    1560: "furniture",
    1920: "household linen",
    1940: "groceries",
    2060: "decoration",
    2220: "pet supplies",
    2280: "newspapers, magazines",
    2403: "book lots",
    2462: "used video game lots",
    2522: "stationery",
    2582: "garden furniture",
    2583: "swimming pools",
    2585: "garden tools",
    2705: "new books",
    2905: "downloadable PC games",
}


def class_name(code: int) -> str:
    """The short name of `code`, '' when it has none."""
    return CLASS_NAMES.get(int(code), "")


def labelled(code: int) -> str:
    """`code` with its name: '2583 swimming pools' (the code alone when it has no name)."""
    name = class_name(code)
    return f"{int(code)} {name}" if name else str(int(code))
