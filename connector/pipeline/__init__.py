"""The consumer loop: decode, map, validate, batch, upload, commit; dead letters, backpressure and wiring."""
