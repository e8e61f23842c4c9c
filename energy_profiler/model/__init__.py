"""Pure record types and values: what one training's record is. No I/O, and no import of any layer above."""
