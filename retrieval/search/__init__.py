"""Search: queries turned into vectors, filters turned into id selections, and hits assembled."""
