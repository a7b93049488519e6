"""Pure parsers of /proc text and thin, size-capped readers (DESIGN §2.2)."""
