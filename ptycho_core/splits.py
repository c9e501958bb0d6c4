"""The split policies of one scan (`ptycho_core.data.split_scan`, `ptycho compare --split`):
their names and the guard band's limit, declared once without numpy (the compare settings use
them when the CLI lists its options)."""

#: none: train on the scan that is reconstructed (no ground truth); spatial: along x with an N/2
#: guard band; interleaved: even patterns train, odd ones test.
SPLITS = ("none", "spatial", "interleaved")

#: A spatial split dropping more than this share of a scan to its guard band is refused unless
#: `max_dropped` (`--max-dropped`) allows it.
MAX_DROPPED_SHARE = 0.5
