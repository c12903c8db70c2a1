"""OpSeal's crypto core: pure, synchronous, no I/O and no clock it was not given."""
